using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WireMock;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;
using WireMock.Types;
using WireMock.Util;

namespace Cortensor.Portal.Unkey.Tests.Stubs;

/// <summary>
/// A stateful WireMock stand-in for the Unkey v2 API that keeps issued keys in memory and answers in Unkey's wire
/// format: <c>POST /v2/keys.verifyKey|createKey|deleteKey|updateKey|getKey</c>, <c>/v2/apis.listKeys</c>,
/// <c>/v2/ratelimit.limit</c> and <c>GET /v2/liveness</c>, with the <c>{meta:{requestId}, data}</c> envelope, errors
/// as <c>{meta, error:{title, detail, status, type}}</c> (<c>application/problem+json</c> when the request accepts it,
/// else <c>application/json</c>), root-key checks (400 missing/malformed, 401 unknown), verifyKey's HTTP 200 for
/// every key outcome with zero values left out, 412 for an unknown rate limit name, and keys as
/// <c>prefix_base58</c> stored only as their SHA-256. Expiry and rate limit windows use the given clock.
/// Faults (status, body, delay) can be queued or made permanent to play an outage.
/// </summary>
internal sealed class UnkeyStub : IDisposable
{
    public const string RootKey = "unkey_3ZfStubRootKeyNeverLogged9x";
    public const string ApiId = "api_stub1234";
    public const string Base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };
    private static readonly HashSet<string> VerifyFields = ["key", "tags", "permissions", "credits", "ratelimits", "migrationId"];

    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, StubKey> _byHash = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StubKey> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (long WindowStart, long Used)> _windows = new(StringComparer.Ordinal);
    private readonly Queue<StubFault> _faults = new();
    private readonly List<JsonObject> _verifyBodies = [];
    private long _sequence;
    private int _handled;

    public UnkeyStub(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        Server = WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"] });
        Server.Given(Request.Create().WithPath("/v2/*").UsingAnyMethod())
            .RespondWith(Response.Create().WithCallback(HandleAsync));
    }

    public WireMockServer Server { get; }

    public Uri Url => new(Server.Url!);

    /// <summary>Requests that reached the stub (faulted ones included).</summary>
    public int Requests => Volatile.Read(ref _handled);

    /// <summary>When set, every request gets this fault (an outage) until it is cleared.</summary>
    public StubFault? Outage { get; set; }

    /// <summary>Bodies of every verifyKey call, to check what the client sent.</summary>
    public IReadOnlyList<JsonObject> VerifyBodies
    {
        get
        {
            lock (_gate)
            {
                return [.. _verifyBodies];
            }
        }
    }

    /// <summary>Answers the next request with <paramref name="fault"/> instead of handling it.</summary>
    public void EnqueueFault(StubFault fault)
    {
        lock (_gate)
        {
            _faults.Enqueue(fault);
        }
    }

    public int CallsTo(string operation) => Server.LogEntries.Count(e => e.RequestMessage.Path == "/v2/" + operation);

    /// <summary>Creates a key directly (as the Unkey dashboard would), with whatever state a test needs.</summary>
    public (string Key, string KeyId) Seed(
        string? externalId,
        string prefix = "pk_test",
        JsonObject? meta = null,
        bool enabled = true,
        long? expiresMs = null,
        long? credits = null,
        IReadOnlyList<(string Name, long Limit, long DurationMs, bool AutoApply)>? ratelimits = null,
        IReadOnlyList<string>? permissions = null,
        string? forcedCode = null)
    {
        var key = prefix + "_" + RandomBase58(32);
        var stored = new StubKey
        {
            KeyId = "key_" + RandomBase58(12),
            Hash = Hash(key),
            Start = key[..(prefix.Length + 5)],
            ApiId = ApiId,
            ExternalId = externalId,
            IdentityId = externalId is null ? null : "id_" + RandomBase58(8),
            Meta = meta,
            Enabled = enabled,
            Expires = expiresMs,
            Credits = credits,
            Permissions = [.. permissions ?? []],
            Ratelimits = [.. (ratelimits ?? []).Select(r => new StubRateLimit("rl_" + RandomBase58(8), r.Name, r.Limit, r.DurationMs, r.AutoApply))],
            CreatedAt = NowMs(),
            ForcedCode = forcedCode,
        };
        lock (_gate)
        {
            _byHash[stored.Hash] = stored;
            _byId[stored.KeyId] = stored;
        }

        return (key, stored.KeyId);
    }

    public void SetEnabled(string keyId, bool enabled)
    {
        lock (_gate)
        {
            _byId[keyId].Enabled = enabled;
        }
    }

    public JsonObject? MetaOf(string keyId)
    {
        lock (_gate)
        {
            return _byId[keyId].Meta?.DeepClone().AsObject();
        }
    }

    public bool IsDeleted(string keyId)
    {
        lock (_gate)
        {
            return !_byId.TryGetValue(keyId, out var key) || key.Deleted;
        }
    }

    public void Dispose() => Server.Stop();

    private async Task<IResponseMessage> HandleAsync(IRequestMessage request)
    {
        Interlocked.Increment(ref _handled);
        StubFault? fault;
        lock (_gate)
        {
            fault = Outage ?? (_faults.Count > 0 ? _faults.Dequeue() : null);
        }

        if (fault is not null)
        {
            if (fault.Delay > TimeSpan.Zero)
            {
                await Task.Delay(fault.Delay);
            }

            if (fault.Status is null)
            {
                // Only slow: then answer normally.
                return Handle(request);
            }

            var response = Respond(fault.Status.Value, fault.Body ?? ErrorBody(fault.Status.Value, "Injected fault", "unkey/application/unexpected_error"), fault.ContentType ?? ErrorContentType(request));
            foreach (var (name, value) in fault.Headers ?? [])
            {
                response.AddHeader(name, value);
            }

            return response;
        }

        return Handle(request);
    }

    private ResponseMessage Handle(IRequestMessage request)
    {
        if (request.Path == "/v2/liveness" && request.Method == "GET")
        {
            return Ok(new JsonObject { ["message"] = "OK" });
        }

        if (request.Method != "POST")
        {
            return Error(request, 404, "Not Found", "No such route.", "unkey/application/not_found");
        }

        var authorization = Header(request, "Authorization");
        if (authorization is null)
        {
            return Error(request, 400, "Bad Request", "Authorization header is missing, but required.", "unkey/authentication/missing");
        }

        if (!authorization.StartsWith("Bearer ", StringComparison.Ordinal))
        {
            return Error(request, 400, "Bad Request", "You must provide a valid root key in the form: \"Bearer <root key>\".", "unkey/authentication/malformed");
        }

        if (authorization["Bearer ".Length..] != RootKey)
        {
            return Error(request, 401, "Unauthorized", "The provided root key is invalid.", "unkey/authentication/key_not_found");
        }

        JsonObject body;
        try
        {
            body = JsonNode.Parse(request.Body ?? "")?.AsObject() ?? throw new JsonException("null body");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return InvalidInput(request, "body", "The request body is not a JSON object.");
        }

        lock (_gate)
        {
            return request.Path switch
            {
                "/v2/keys.verifyKey" => VerifyKey(request, body),
                "/v2/keys.createKey" => CreateKey(request, body),
                "/v2/keys.deleteKey" => DeleteKey(request, body),
                "/v2/keys.updateKey" => UpdateKey(request, body),
                "/v2/keys.getKey" => GetKey(request, body),
                "/v2/apis.listKeys" => ListKeys(request, body),
                "/v2/ratelimit.limit" => Limit(body),
                _ => Error(request, 404, "Not Found", "No such route.", "unkey/application/not_found"),
            };
        }
    }

    private ResponseMessage VerifyKey(IRequestMessage request, JsonObject body)
    {
        _verifyBodies.Add(body.DeepClone().AsObject());
        foreach (var (name, _) in body)
        {
            if (!VerifyFields.Contains(name))
            {
                return InvalidInput(request, "body." + name, "additional property not allowed");
            }
        }

        if (body["key"]?.GetValueKind() != JsonValueKind.String || body["key"]!.GetValue<string>() is not { Length: >= 1 and <= 512 } presented)
        {
            return InvalidInput(request, "body.key", "key is required (1 to 512 characters)");
        }

        if (!_byHash.TryGetValue(Hash(presented), out var key) || key.Deleted)
        {
            return Ok(new JsonObject { ["valid"] = false, ["code"] = "NOT_FOUND" });
        }

        if (key.ForcedCode is { } forced)
        {
            return Ok(Describe(key, forced == "VALID", forced, ratelimits: null));
        }

        if (!key.Enabled)
        {
            return Ok(Describe(key, false, "DISABLED", null));
        }

        var now = NowMs();
        if (key.Expires is { } expires && expires <= now)
        {
            return Ok(Describe(key, false, "EXPIRED", null));
        }

        // Rate limits: the named ones (412 when unknown and not ad hoc) plus every autoApply limit.
        var checks = new List<(StubRateLimit Limit, long Cost)>();
        foreach (var node in body["ratelimits"]?.AsArray() ?? [])
        {
            var name = node!["name"]!.GetValue<string>();
            var cost = node["cost"]?.GetValue<long>() ?? 1;
            var configured = key.Ratelimits.FirstOrDefault(r => r.Name == name);
            if (configured is null && node["limit"] is { } limit && node["duration"] is { } duration)
            {
                configured = new StubRateLimit("", name, limit.GetValue<long>(), duration.GetValue<long>(), false);
            }

            if (configured is null)
            {
                return Error(request, 412, "Precondition Failed", $"Rate limit '{name}' was not found on the key or its identity.", "unkey/application/precondition_failed");
            }

            checks.Add((configured, cost));
        }

        foreach (var auto in key.Ratelimits.Where(r => r.AutoApply && checks.All(c => c.Limit.Name != r.Name)))
        {
            checks.Add((auto, 1));
        }

        var states = new JsonArray();
        var exceeded = false;
        var decided = new List<(StubRateLimit Limit, long Cost, string Window, long WindowStart, long Used)>();
        foreach (var (limit, cost) in checks)
        {
            var windowStart = now / limit.DurationMs * limit.DurationMs;
            var window = key.KeyId + ":" + limit.Name;
            var used = _windows.TryGetValue(window, out var state) && state.WindowStart == windowStart ? state.Used : 0;
            var over = used + cost > limit.Limit;
            exceeded |= over;
            decided.Add((limit, cost, window, windowStart, used));
        }

        foreach (var (limit, cost, window, windowStart, used) in decided)
        {
            var after = exceeded ? used : used + cost;
            if (!exceeded)
            {
                _windows[window] = (windowStart, after);
            }

            states.Add(new JsonObject
            {
                ["id"] = limit.Id,
                ["name"] = limit.Name,
                ["limit"] = limit.Limit,
                ["duration"] = limit.DurationMs,
                ["reset"] = windowStart + limit.DurationMs, // absolute unix ms, as the server sends it
                ["remaining"] = Math.Max(0, limit.Limit - after),
                ["exceeded"] = used + cost > limit.Limit,
                ["autoApply"] = limit.AutoApply,
            });
        }

        if (exceeded)
        {
            return Ok(Describe(key, false, "RATE_LIMITED", states));
        }

        if (key.Credits is { } credits)
        {
            var cost = body["credits"]?["cost"]?.GetValue<long>() ?? 1;
            if (credits < cost)
            {
                return Ok(Describe(key, false, "USAGE_EXCEEDED", states));
            }

            key.Credits = credits - cost;
        }

        return Ok(Describe(key, true, "VALID", states));
    }

    private static JsonObject Describe(StubKey key, bool valid, string code, JsonArray? ratelimits)
    {
        var data = new JsonObject { ["valid"] = valid, ["code"] = code, ["keyId"] = key.KeyId };
        if (key.Name is { Length: > 0 } name)
        {
            data["name"] = name;
        }

        if (key.Meta is { Count: > 0 } meta)
        {
            data["meta"] = meta.DeepClone();
        }

        if (key.Expires is { } expires)
        {
            data["expires"] = expires;
        }

        if (key.Credits is { } credits)
        {
            data["credits"] = credits;
        }

        data["enabled"] = key.Enabled;
        if (key.Permissions.Count > 0)
        {
            data["permissions"] = new JsonArray([.. key.Permissions.Select(p => (JsonNode?)JsonValue.Create(p))]);
        }

        if (key.ExternalId is not null)
        {
            data["identity"] = new JsonObject { ["id"] = key.IdentityId, ["externalId"] = key.ExternalId };
        }

        if (ratelimits is { Count: > 0 })
        {
            data["ratelimits"] = ratelimits;
        }

        return data;
    }

    private ResponseMessage CreateKey(IRequestMessage request, JsonObject body)
    {
        if (body["apiId"]?.GetValue<string>() is not { } apiId)
        {
            return InvalidInput(request, "body.apiId", "apiId is required");
        }

        if (apiId != ApiId)
        {
            return Error(request, 404, "Not Found", $"The requested API '{apiId}' does not exist.", "unkey/data/api_not_found");
        }

        var prefix = body["prefix"]?.GetValue<string>();
        if (prefix is not null && (prefix.Length is < 1 or > 16 || prefix.Any(c => !char.IsAsciiLetterOrDigit(c) && c != '_')))
        {
            return InvalidInput(request, "body.prefix", "prefix must be 1 to 16 characters of [A-Za-z0-9_]");
        }

        var byteLength = body["byteLength"]?.GetValue<int>() ?? 16;
        if (byteLength is < 16 or > 255)
        {
            return InvalidInput(request, "body.byteLength", "byteLength must be between 16 and 255");
        }

        var externalId = body["externalId"]?.GetValue<string>();
        var random = RandomBase58(byteLength);
        var plaintext = prefix is null ? random : prefix + "_" + random;
        var key = new StubKey
        {
            KeyId = "key_" + RandomBase58(12),
            Hash = Hash(plaintext),
            Start = prefix is null ? random[..4] : prefix + "_" + random[..4],
            ApiId = apiId,
            Name = body["name"]?.GetValue<string>(),
            ExternalId = externalId,
            IdentityId = externalId is null ? null : IdentityIdFor(externalId),
            Meta = body["meta"]?.DeepClone().AsObject(),
            Enabled = body["enabled"]?.GetValue<bool>() ?? true,
            Expires = body["expires"]?.GetValue<long>(),
            Credits = body["credits"]?["remaining"]?.GetValue<long>(),
            Permissions = [.. body["permissions"]?.AsArray().Select(p => p!.GetValue<string>()) ?? []],
            Ratelimits = [.. body["ratelimits"]?.AsArray().Select(r => new StubRateLimit("rl_" + RandomBase58(8), r!["name"]!.GetValue<string>(), r["limit"]!.GetValue<long>(), r["duration"]!.GetValue<long>(), r["autoApply"]?.GetValue<bool>() ?? false)) ?? []],
            CreatedAt = NowMs() + Interlocked.Increment(ref _sequence), // distinct, ordered
        };
        _byHash[key.Hash] = key;
        _byId[key.KeyId] = key;
        return Ok(new JsonObject { ["keyId"] = key.KeyId, ["key"] = plaintext });
    }

    private string IdentityIdFor(string externalId)
        => _byId.Values.FirstOrDefault(k => k.ExternalId == externalId)?.IdentityId ?? "id_" + RandomBase58(8);

    private ResponseMessage DeleteKey(IRequestMessage request, JsonObject body)
    {
        if (!TryFind(body, out var key))
        {
            return KeyNotFound(request);
        }

        if (body["permanent"]?.GetValue<bool>() == true)
        {
            _byId.Remove(key.KeyId);
            _byHash.Remove(key.Hash);
        }
        else
        {
            key.Deleted = true;
        }

        return Ok(new JsonObject());
    }

    private ResponseMessage UpdateKey(IRequestMessage request, JsonObject body)
    {
        if (!TryFind(body, out var key))
        {
            return KeyNotFound(request);
        }

        foreach (var (name, value) in body)
        {
            switch (name)
            {
                case "keyId":
                    break;
                case "name":
                    key.Name = value?.GetValue<string>();
                    break;
                case "meta":
                    key.Meta = value?.DeepClone().AsObject();
                    break;
                case "expires":
                    key.Expires = value?.GetValue<long>();
                    break;
                case "enabled":
                    key.Enabled = value!.GetValue<bool>();
                    break;
                case "externalId":
                    key.ExternalId = value?.GetValue<string>();
                    key.IdentityId = key.ExternalId is null ? null : IdentityIdFor(key.ExternalId);
                    break;
                default:
                    return InvalidInput(request, "body." + name, "additional property not allowed");
            }
        }

        return Ok(new JsonObject());
    }

    private ResponseMessage GetKey(IRequestMessage request, JsonObject body)
        => TryFind(body, out var key) ? Ok(KeyResponse(key)) : KeyNotFound(request);

    private ResponseMessage ListKeys(IRequestMessage request, JsonObject body)
    {
        var apiId = body["apiId"]?.GetValue<string>();
        if (apiId != ApiId)
        {
            return Error(request, 404, "Not Found", $"The requested API '{apiId}' does not exist.", "unkey/data/api_not_found");
        }

        var limit = body["limit"]?.GetValue<int>() ?? 100;
        if (limit is < 1 or > 100)
        {
            return InvalidInput(request, "body.limit", "limit must be between 1 and 100");
        }

        var externalId = body["externalId"]?.GetValue<string>();
        var cursor = body["cursor"]?.GetValue<string>();
        var keys = _byId.Values
            .Where(k => !k.Deleted && k.ApiId == apiId && (externalId is null || k.ExternalId == externalId))
            .OrderBy(k => k.KeyId, StringComparer.Ordinal)
            .Where(k => cursor is null || string.CompareOrdinal(k.KeyId, cursor) > 0)
            .ToList();
        var page = keys.Take(limit).ToList();
        var data = new JsonArray([.. page.Select(k => (JsonNode?)KeyResponse(k))]);
        var pagination = new JsonObject { ["hasMore"] = keys.Count > page.Count };
        if (keys.Count > page.Count)
        {
            pagination["cursor"] = page[^1].KeyId;
        }

        return Respond(200, new JsonObject { ["meta"] = Meta(), ["data"] = data, ["pagination"] = pagination }.ToJsonString(Compact), "application/json");
    }

    private ResponseMessage Limit(JsonObject body)
    {
        var window = "ns:" + body["namespace"]!.GetValue<string>() + ":" + body["identifier"]!.GetValue<string>();
        var limit = body["limit"]!.GetValue<long>();
        var duration = body["duration"]!.GetValue<long>();
        var cost = body["cost"]?.GetValue<long>() ?? 1;
        var now = NowMs();
        var windowStart = now / duration * duration;
        var used = _windows.TryGetValue(window, out var state) && state.WindowStart == windowStart ? state.Used : 0;
        var success = used + cost <= limit;
        if (success)
        {
            _windows[window] = (windowStart, used + cost);
        }

        return Ok(new JsonObject
        {
            ["success"] = success,
            ["limit"] = limit,
            ["remaining"] = Math.Max(0, limit - (success ? used + cost : used)),
            ["reset"] = windowStart + duration,
        });
    }

    private static JsonObject KeyResponse(StubKey key)
    {
        var data = new JsonObject { ["keyId"] = key.KeyId, ["start"] = key.Start, ["enabled"] = key.Enabled, ["createdAt"] = key.CreatedAt };
        if (key.Name is { Length: > 0 } name)
        {
            data["name"] = name;
        }

        if (key.Meta is { Count: > 0 } meta)
        {
            data["meta"] = meta.DeepClone();
        }

        if (key.Expires is { } expires)
        {
            data["expires"] = expires;
        }

        if (key.Permissions.Count > 0)
        {
            data["permissions"] = new JsonArray([.. key.Permissions.Select(p => (JsonNode?)JsonValue.Create(p))]);
        }

        if (key.Credits is { } credits)
        {
            data["credits"] = new JsonObject { ["remaining"] = credits };
        }

        if (key.ExternalId is not null)
        {
            data["identity"] = new JsonObject { ["id"] = key.IdentityId, ["externalId"] = key.ExternalId };
        }

        return data;
    }

    private bool TryFind(JsonObject body, out StubKey key)
    {
        key = null!;
        return body["keyId"]?.GetValue<string>() is { } keyId && _byId.TryGetValue(keyId, out key!) && !key.Deleted;
    }

    private ResponseMessage KeyNotFound(IRequestMessage request)
        => Error(request, 404, "Not Found", "The requested key does not exist or has been deleted.", "unkey/data/key_not_found");

    private static ResponseMessage InvalidInput(IRequestMessage request, string location, string message)
    {
        // Schema validation errors are always application/json, whatever the Accept header says.
        var error = JsonNode.Parse(ErrorBody(400, "Bad Request", "unkey/application/invalid_input"))!.AsObject();
        error["error"]!["detail"] = "One or more fields failed validation";
        error["error"]!["errors"] = new JsonArray(new JsonObject { ["location"] = location, ["message"] = message });
        return Respond(400, error.ToJsonString(Compact), "application/json");
    }

    private ResponseMessage Error(IRequestMessage request, int status, string title, string detail, string type)
    {
        var body = new JsonObject
        {
            ["meta"] = Meta(),
            ["error"] = new JsonObject { ["title"] = title, ["detail"] = detail, ["status"] = status, ["type"] = "https://unkey.com/docs/errors/" + type },
        };
        return Respond(status, body.ToJsonString(Compact), ErrorContentType(request));
    }

    /// <summary>An Unkey error body for <paramref name="status"/>.</summary>
    public static string ErrorBody(int status, string title, string type, string? requestId = null)
        => new JsonObject
        {
            ["meta"] = new JsonObject { ["requestId"] = requestId ?? "req_" + RandomBase58(10) },
            ["error"] = new JsonObject { ["title"] = title, ["detail"] = title + ".", ["status"] = status, ["type"] = "https://unkey.com/docs/errors/" + type },
        }.ToJsonString(Compact);

    private static string ErrorContentType(IRequestMessage request)
    {
        var accept = Header(request, "Accept") ?? "";
        return accept.Contains("application/problem+json", StringComparison.Ordinal) || accept.Contains("application/*", StringComparison.Ordinal) || accept.Contains("*/*", StringComparison.Ordinal)
            ? "application/problem+json"
            : "application/json";
    }

    private static ResponseMessage Ok(JsonNode data)
        => Respond(200, new JsonObject { ["meta"] = Meta(), ["data"] = data }.ToJsonString(Compact), "application/json");

    private static JsonObject Meta() => new() { ["requestId"] = "req_" + RandomBase58(10) };

    private static ResponseMessage Respond(int status, string body, string contentType)
    {
        var response = new ResponseMessage
        {
            StatusCode = status,
            BodyData = new BodyData { BodyAsString = body, DetectedBodyType = BodyType.String, Encoding = Encoding.UTF8 },
        };
        response.AddHeader("Content-Type", contentType);
        return response;
    }

    private static string? Header(IRequestMessage request, string name)
        => request.Headers?.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value?.FirstOrDefault();

    private long NowMs() => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>SHA-256 of the whole key, standard base64 with padding, as Unkey stores it.</summary>
    public static string Hash(string key) => Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    /// <summary>Base58 (Bitcoin alphabet) of <paramref name="byteCount"/> random bytes, as Unkey encodes key bodies.</summary>
    public static string RandomBase58(int byteCount)
    {
        var bytes = RandomNumberGenerator.GetBytes(byteCount);
        var value = new BigInteger(bytes, isUnsigned: true, isBigEndian: true);
        var text = new StringBuilder();
        while (value > 0)
        {
            text.Insert(0, Base58Alphabet[(int)(value % 58)]);
            value /= 58;
        }

        foreach (var b in bytes)
        {
            if (b != 0)
            {
                break;
            }

            text.Insert(0, '1');
        }

        return text.ToString();
    }

    public static string Ms(DateTimeOffset at) => at.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);

    private sealed class StubKey
    {
        public required string KeyId { get; init; }

        public required string Hash { get; init; }

        public required string Start { get; init; }

        public required string ApiId { get; init; }

        public string? Name { get; set; }

        public string? ExternalId { get; set; }

        public string? IdentityId { get; set; }

        public JsonObject? Meta { get; set; }

        public bool Enabled { get; set; } = true;

        public long? Expires { get; set; }

        public long? Credits { get; set; }

        public List<string> Permissions { get; init; } = [];

        public List<StubRateLimit> Ratelimits { get; init; } = [];

        public long CreatedAt { get; init; }

        public bool Deleted { get; set; }

        public string? ForcedCode { get; init; }
    }

    private sealed record StubRateLimit(string Id, string Name, long Limit, long DurationMs, bool AutoApply);
}

/// <summary>What the stub answers instead of handling a request: a status with a body, a delay, or both.</summary>
/// <param name="Status">The status, or null to only delay and then answer normally.</param>
/// <param name="Body">The body (default: an Unkey error body for the status).</param>
/// <param name="ContentType">The content type (default: as Unkey would choose for the request).</param>
/// <param name="Delay">Wait this long first (real time).</param>
/// <param name="Headers">Extra headers, for example <c>Retry-After</c>.</param>
internal sealed record StubFault(int? Status, string? Body = null, string? ContentType = null, TimeSpan Delay = default, IReadOnlyList<(string Name, string Value)>? Headers = null);
