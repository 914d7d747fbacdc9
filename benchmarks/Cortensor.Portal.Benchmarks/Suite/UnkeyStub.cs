using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>
/// <c>serve unkey-stub</c>: the part of the Unkey v2 API the Portal's Unkey provider calls in the suite, in Unkey's wire
/// format (see the project reference notes on Unkey, unkey.md §1–§4 and §9): <c>POST /v2/keys.createKey</c> (the
/// gateway issues its benchmark key through <c>IApiKeyProvider.IssueAsync</c> at start-up), <c>POST /v2/keys.verifyKey</c>
/// (every request, unless the provider caches) and <c>GET /v2/liveness</c>. Every POST needs
/// <c>Authorization: Bearer &lt;root key&gt;</c> (400 missing or malformed, 401 unknown); answers are the
/// <c>{meta:{requestId}, data}</c> envelope or <c>{meta, error:{title, detail, status, type}}</c>. Keys are
/// <c>prefix_base58</c>, kept in memory only as their SHA-256 (standard base64, as Unkey stores them); verifyKey answers
/// HTTP 200 for every key outcome (<c>VALID</c>, <c>DISABLED</c>, <c>EXPIRED</c>, <c>NOT_FOUND</c>) with zero values
/// left out, and refuses request fields its schema does not have (400, as the real validator does).
/// </summary>
/// <remarks>
/// Every verifyKey answer is delayed by <c>latency</c> (<see cref="Task.Delay(TimeSpan)"/>): the stub runs on the same
/// cores as everything else, so it must cost little CPU, and the wait stands in for a hosted Unkey in the same region
/// (Unkey's stated target is a sub-10 ms service time, unkey.md §7). The valid answer of each key is serialized once,
/// when the key is created; only the request id changes per call.
/// </remarks>
internal static class UnkeyStub
{
    private const string ErrorDocs = "https://unkey.com/docs/errors/";
    private static readonly HashSet<string> VerifyFields = new(StringComparer.Ordinal) { "key", "tags", "permissions", "credits", "ratelimits", "migrationId" };
    private static readonly HashSet<string> CreateFields = new(StringComparer.Ordinal)
    {
        "apiId", "prefix", "name", "byteLength", "externalId", "meta", "roles", "permissions", "expires", "credits", "ratelimits", "enabled", "recoverable",
    };

    private static readonly byte[] NotFound = """{"valid":false,"code":"NOT_FOUND"}"""u8.ToArray();

    /// <summary>Maps the stub's routes on a built app.</summary>
    /// <param name="app">The app (Kestrel on 127.0.0.1).</param>
    /// <param name="rootKey">The only root key accepted.</param>
    /// <param name="apiId">The only API (keyspace) that exists.</param>
    /// <param name="latency">Added to every verifyKey answer.</param>
    public static void Map(WebApplication app, string rootKey, string apiId, TimeSpan latency)
    {
        var keys = new ConcurrentDictionary<string, StoredKey>(StringComparer.Ordinal);
        var requestIds = new RequestIds();
        var expectedAuthorization = "Bearer " + rootKey;

        app.MapGet("/v2/liveness", context => WriteAsync(context, 200, requestIds.Next(), "data", """{"message":"OK"}"""u8.ToArray()));
        app.MapPost("/v2/{operation}", async context =>
        {
            var operation = (string)context.Request.RouteValues["operation"]!;
            if (operation == "keys.verifyKey" && latency > TimeSpan.Zero)
            {
                await Task.Delay(latency, context.RequestAborted);
            }

            var requestId = requestIds.Next();
            string? authorization = context.Request.Headers.Authorization;
            if (authorization is null)
            {
                await ErrorAsync(context, requestId, 400, "Bad Request", "Authorization header is missing, but required.", "unkey/authentication/missing");
                return;
            }

            if (!authorization.StartsWith("Bearer ", StringComparison.Ordinal))
            {
                await ErrorAsync(context, requestId, 400, "Bad Request", "You must provide a valid root key in the form: \"Bearer <root key>\".", "unkey/authentication/malformed");
                return;
            }

            if (!string.Equals(authorization, expectedAuthorization, StringComparison.Ordinal))
            {
                await ErrorAsync(context, requestId, 401, "Unauthorized", "The provided root key is invalid.", "unkey/authentication/key_not_found");
                return;
            }

            JsonDocument body;
            try
            {
                body = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted);
            }
            catch (JsonException)
            {
                await InvalidInputAsync(context, requestId, "body", "The request body is not valid JSON.");
                return;
            }

            using (body)
            {
                if (body.RootElement.ValueKind != JsonValueKind.Object)
                {
                    await InvalidInputAsync(context, requestId, "body", "The request body must be a JSON object.");
                    return;
                }

                switch (operation)
                {
                    case "keys.verifyKey":
                        await VerifyKeyAsync(context, requestId, body.RootElement, keys);
                        break;
                    case "keys.createKey":
                        await CreateKeyAsync(context, requestId, body.RootElement, keys, apiId);
                        break;
                    default:
                        await ErrorAsync(context, requestId, 404, "Not Found", "No such route.", "unkey/application/not_found");
                        break;
                }
            }
        });
    }

    private static Task VerifyKeyAsync(HttpContext context, string requestId, JsonElement body, ConcurrentDictionary<string, StoredKey> keys)
    {
        if (Unexpected(body, VerifyFields) is { } field)
        {
            return InvalidInputAsync(context, requestId, "body." + field, "additional property not allowed");
        }

        if (!body.TryGetProperty("key", out var keyElement) || keyElement.ValueKind != JsonValueKind.String || keyElement.GetString() is not { Length: >= 1 and <= 512 } presented)
        {
            return InvalidInputAsync(context, requestId, "body.key", "key is required (1 to 512 characters)");
        }

        if (!keys.TryGetValue(Hash(presented), out var key))
        {
            return WriteAsync(context, 200, requestId, "data", NotFound);
        }

        var data = !key.Enabled ? key.Describe("DISABLED")
            : key.Expires is { } expires && expires <= DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() ? key.Describe("EXPIRED")
            : key.Valid;
        return WriteAsync(context, 200, requestId, "data", data);
    }

    private static Task CreateKeyAsync(HttpContext context, string requestId, JsonElement body, ConcurrentDictionary<string, StoredKey> keys, string apiId)
    {
        if (Unexpected(body, CreateFields) is { } field)
        {
            return InvalidInputAsync(context, requestId, "body." + field, "additional property not allowed");
        }

        if (String(body, "apiId") is not { } requestedApi)
        {
            return InvalidInputAsync(context, requestId, "body.apiId", "apiId is required");
        }

        if (requestedApi != apiId)
        {
            return ErrorAsync(context, requestId, 404, "Not Found", $"The requested API '{requestedApi}' does not exist.", "unkey/data/api_not_found");
        }

        var prefix = String(body, "prefix");
        if (prefix is not null && (prefix.Length is < 1 or > 16 || prefix.Any(static c => !char.IsAsciiLetterOrDigit(c) && c != '_')))
        {
            return InvalidInputAsync(context, requestId, "body.prefix", "prefix must be 1 to 16 characters of [A-Za-z0-9_]");
        }

        var byteLength = body.TryGetProperty("byteLength", out var length) && length.ValueKind == JsonValueKind.Number ? length.GetInt32() : 16;
        if (byteLength is < 16 or > 255)
        {
            return InvalidInputAsync(context, requestId, "body.byteLength", "byteLength must be between 16 and 255");
        }

        var externalId = String(body, "externalId");
        if (externalId is not null && (externalId.Length is < 1 or > 255 || externalId.Any(static c => !char.IsAsciiLetterOrDigit(c) && c is not ('_' or '.' or '-'))))
        {
            return InvalidInputAsync(context, requestId, "body.externalId", "externalId must be 1 to 255 characters of [A-Za-z0-9_.-]");
        }

        var random = RandomBase58(byteLength);
        var plaintext = prefix is null ? random : prefix + "_" + random;
        var key = new StoredKey
        {
            KeyId = "key_" + RandomBase58(12),
            Name = String(body, "name"),
            ExternalId = externalId,
            IdentityId = externalId is null ? null : "id_" + RandomBase58(8),
            Meta = body.TryGetProperty("meta", out var meta) && meta.ValueKind == JsonValueKind.Object ? meta.GetRawText() : null,
            Permissions = body.TryGetProperty("permissions", out var permissions) && permissions.ValueKind == JsonValueKind.Array
                ? [.. permissions.EnumerateArray().Select(static p => p.GetString() ?? "")]
                : [],
            Expires = body.TryGetProperty("expires", out var expires) && expires.ValueKind == JsonValueKind.Number ? expires.GetInt64() : null,
            Enabled = !body.TryGetProperty("enabled", out var enabled) || enabled.ValueKind != JsonValueKind.False,
        };
        key.Valid = key.Describe("VALID");
        keys[Hash(plaintext)] = key;
        return WriteAsync(context, 200, requestId, "data", Json(writer =>
        {
            writer.WriteStartObject();
            writer.WriteString("keyId", key.KeyId);
            writer.WriteString("key", plaintext);
            writer.WriteEndObject();
        }));
    }

    private static string? Unexpected(JsonElement body, HashSet<string> allowed)
    {
        foreach (var property in body.EnumerateObject())
        {
            if (!allowed.Contains(property.Name))
            {
                return property.Name;
            }
        }

        return null;
    }

    private static string? String(JsonElement body, string name)
        => body.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static Task ErrorAsync(HttpContext context, string requestId, int status, string title, string detail, string type)
        => WriteAsync(context, status, requestId, "error", ErrorBody(status, title, detail, type, null), ErrorContentType(context.Request));

    /// <summary>Schema validation failures: always <c>application/json</c>, with <c>errors[]</c>.</summary>
    private static Task InvalidInputAsync(HttpContext context, string requestId, string location, string message)
        => WriteAsync(context, 400, requestId, "error", ErrorBody(400, "Bad Request", "One or more fields failed validation", "unkey/application/invalid_input", (location, message)));

    private static byte[] ErrorBody(int status, string title, string detail, string type, (string Location, string Message)? invalid) => Json(writer =>
    {
        writer.WriteStartObject();
        writer.WriteString("title", title);
        writer.WriteString("detail", detail);
        writer.WriteNumber("status", status);
        writer.WriteString("type", ErrorDocs + type);
        if (invalid is { } error)
        {
            writer.WriteStartArray("errors");
            writer.WriteStartObject();
            writer.WriteString("location", error.Location);
            writer.WriteString("message", error.Message);
            writer.WriteEndObject();
            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    });

    /// <summary><c>application/problem+json</c> when the request accepts it, else <c>application/json</c> (unkey.md §1).</summary>
    private static string ErrorContentType(HttpRequest request)
    {
        var accept = request.Headers.Accept.ToString();
        return accept.Contains("application/problem+json", StringComparison.Ordinal) || accept.Contains("application/*", StringComparison.Ordinal) || accept.Contains("*/*", StringComparison.Ordinal)
            ? "application/problem+json"
            : "application/json";
    }

    /// <summary>Writes <c>{"meta":{"requestId":…},"&lt;member&gt;":&lt;payload&gt;}</c>.</summary>
    private static Task WriteAsync(HttpContext context, int status, string requestId, string member, byte[] payload, string contentType = "application/json")
    {
        var head = Encoding.UTF8.GetBytes("{\"meta\":{\"requestId\":\"" + requestId + "\"},\"" + member + "\":");
        var body = new byte[head.Length + payload.Length + 1];
        head.CopyTo(body, 0);
        payload.CopyTo(body, head.Length);
        body[^1] = (byte)'}';
        context.Response.StatusCode = status;
        context.Response.ContentType = contentType;
        context.Response.ContentLength = body.Length;
        return context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>SHA-256 of the whole key (prefix included), standard base64 with padding, as Unkey stores it.</summary>
    private static string Hash(string key) => Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>
    /// Random text in the Base58 (Bitcoin) alphabet Unkey uses for key bodies, about as long as the Base58 form of
    /// <paramref name="byteCount"/> random bytes (the benchmark needs the look and the entropy, not the encoding).
    /// </summary>
    private static string RandomBase58(int byteCount) =>
        RandomNumberGenerator.GetString("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", (int)Math.Ceiling(byteCount * 1.366));

    /// <summary>Unkey-style request ids (<c>req_…</c>): a random run prefix and a counter.</summary>
    private sealed class RequestIds
    {
        private readonly string _prefix = "req_" + RandomBase58(6);
        private long _next;

        public string Next() => _prefix + Interlocked.Increment(ref _next).ToString("x", CultureInfo.InvariantCulture);
    }

    /// <summary>A key as the stub keeps it (never its plaintext).</summary>
    private sealed class StoredKey
    {
        public required string KeyId { get; init; }

        public string? Name { get; init; }

        public string? ExternalId { get; init; }

        public string? IdentityId { get; init; }

        /// <summary>The key's <c>meta</c> object as raw JSON.</summary>
        public string? Meta { get; init; }

        public required IReadOnlyList<string> Permissions { get; init; }

        /// <summary>Unix milliseconds.</summary>
        public long? Expires { get; init; }

        public bool Enabled { get; init; }

        /// <summary>The <c>VALID</c> answer's <c>data</c>, serialized once.</summary>
        public byte[] Valid { get; set; } = [];

        /// <summary>verifyKey's <c>data</c> for <paramref name="code"/>, zero values left out (Go <c>omitempty</c>).</summary>
        public byte[] Describe(string code) => Json(writer =>
        {
            writer.WriteStartObject();
            writer.WriteBoolean("valid", code == "VALID");
            writer.WriteString("code", code);
            writer.WriteString("keyId", KeyId);
            if (Name is { Length: > 0 })
            {
                writer.WriteString("name", Name);
            }

            if (Meta is not null)
            {
                writer.WritePropertyName("meta");
                writer.WriteRawValue(Meta);
            }

            if (Expires is { } expires)
            {
                writer.WriteNumber("expires", expires);
            }

            writer.WriteBoolean("enabled", Enabled);
            if (Permissions.Count > 0)
            {
                writer.WriteStartArray("permissions");
                foreach (var permission in Permissions)
                {
                    writer.WriteStringValue(permission);
                }

                writer.WriteEndArray();
            }

            if (ExternalId is not null)
            {
                writer.WriteStartObject("identity");
                writer.WriteString("id", IdentityId);
                writer.WriteString("externalId", ExternalId);
                writer.WriteEndObject();
            }

            writer.WriteEndObject();
        });
    }
}
