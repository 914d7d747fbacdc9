using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Cortensor.Portal.Unkey.Client;

// The Unkey v2 wire format (POST /v2/<group>.<op>, JSON in, {meta, data[, pagination]} or {meta, error} out).
// Field names and shapes follow svc/api/openapi/spec in unkeyed/unkey; unknown response fields are ignored and
// optional ones are nullable, because Unkey leaves zero values out (Go omitempty).

/// <summary>Envelope metadata: Unkey's id of the call (<c>req_…</c>), the one to quote to Unkey support.</summary>
public sealed record UnkeyMeta
{
    public string? RequestId { get; init; }
}

/// <summary>Cursor paging of list calls.</summary>
public sealed record UnkeyPagination
{
    public string? Cursor { get; init; }

    public bool HasMore { get; init; }
}

/// <summary>An Unkey error body (RFC 7807 style), sent as <c>application/json</c> or <c>application/problem+json</c>.</summary>
public sealed record UnkeyError
{
    public string? Title { get; init; }

    public string? Detail { get; init; }

    public int? Status { get; init; }

    /// <summary>A docs URL such as <c>https://unkey.com/docs/errors/unkey/authentication/key_not_found</c>.</summary>
    public string? Type { get; init; }

    /// <summary>Validation failures of a 400 (<c>location</c>, <c>message</c>, <c>fix</c>).</summary>
    public IReadOnlyList<UnkeyValidationError>? Errors { get; init; }
}

/// <summary>One schema validation failure of a 400.</summary>
public sealed record UnkeyValidationError
{
    public string? Location { get; init; }

    public string? Message { get; init; }

    public string? Fix { get; init; }
}

/// <summary>The v2 envelope.</summary>
/// <typeparam name="TData">The type of <c>data</c>.</typeparam>
public sealed record UnkeyEnvelope<TData>
{
    public UnkeyMeta? Meta { get; init; }

    public TData? Data { get; init; }

    public UnkeyPagination? Pagination { get; init; }

    public UnkeyError? Error { get; init; }
}

/// <summary>A successful call: <c>data</c>, Unkey's request id and, for lists, the paging cursor.</summary>
/// <typeparam name="TData">The type of <c>data</c>.</typeparam>
/// <param name="Data">The response data.</param>
/// <param name="RequestId">Unkey's <c>meta.requestId</c>.</param>
/// <param name="Pagination">The paging cursor of list calls.</param>
public sealed record UnkeyResponse<TData>(TData Data, string? RequestId, UnkeyPagination? Pagination);

/// <summary>Body of <c>POST /v2/keys.verifyKey</c>. v2 takes no <c>apiId</c>: the root key's permissions choose the API.</summary>
public sealed record UnkeyVerifyKeyRequest
{
    public required string Key { get; init; }

    public IReadOnlyList<string>? Tags { get; init; }

    public string? Permissions { get; init; }

    public UnkeyCreditsCost? Credits { get; init; }

    public IReadOnlyList<UnkeyVerifyRateLimit>? Ratelimits { get; init; }
}

/// <summary><c>credits</c> of a verification.</summary>
public sealed record UnkeyCreditsCost
{
    public long Cost { get; init; }
}

/// <summary>A rate limit named in a verification; <see cref="Limit"/> with <see cref="Duration"/> (ms) makes it ad hoc.</summary>
public sealed record UnkeyVerifyRateLimit
{
    public required string Name { get; init; }

    public long? Cost { get; init; }

    public long? Limit { get; init; }

    public long? Duration { get; init; }
}

/// <summary><c>data</c> of <c>keys.verifyKey</c> (HTTP 200 for every key outcome: read <see cref="Valid"/> and <see cref="Code"/>).</summary>
public sealed record UnkeyVerifyKeyData
{
    public bool Valid { get; init; }

    /// <summary><c>VALID</c>, <c>NOT_FOUND</c>, <c>FORBIDDEN</c>, <c>INSUFFICIENT_PERMISSIONS</c>, <c>USAGE_EXCEEDED</c>, <c>RATE_LIMITED</c>, <c>DISABLED</c>, <c>EXPIRED</c>, or a newer value.</summary>
    public string? Code { get; init; }

    public string? KeyId { get; init; }

    public string? Name { get; init; }

    public JsonElement? Meta { get; init; }

    /// <summary>Unix milliseconds.</summary>
    public long? Expires { get; init; }

    /// <summary>Credits left after this call; absent means unlimited.</summary>
    public long? Credits { get; init; }

    public bool? Enabled { get; init; }

    public IReadOnlyList<string>? Permissions { get; init; }

    public IReadOnlyList<string>? Roles { get; init; }

    public UnkeyIdentity? Identity { get; init; }

    public IReadOnlyList<UnkeyRateLimitState>? Ratelimits { get; init; }
}

/// <summary>The identity a key belongs to; the Portal keeps the org id in <see cref="ExternalId"/>.</summary>
public sealed record UnkeyIdentity
{
    public string? Id { get; init; }

    public string? ExternalId { get; init; }

    public JsonElement? Meta { get; init; }
}

/// <summary>State of one rate limit after a verification.</summary>
public sealed record UnkeyRateLimitState
{
    public string? Id { get; init; }

    public string? Name { get; init; }

    public long Limit { get; init; }

    /// <summary>Window in milliseconds.</summary>
    public long Duration { get; init; }

    /// <summary>When the window resets, in unix milliseconds (the spec calls it a duration; the server sends a timestamp).</summary>
    public long Reset { get; init; }

    public long Remaining { get; init; }

    public bool Exceeded { get; init; }

    public bool AutoApply { get; init; }
}

/// <summary>Body of <c>POST /v2/keys.createKey</c>.</summary>
public sealed record UnkeyCreateKeyRequest
{
    public required string ApiId { get; init; }

    /// <summary>1–16 characters of <c>[A-Za-z0-9_]</c>; Unkey adds the <c>_</c> separator.</summary>
    public string? Prefix { get; init; }

    public string? Name { get; init; }

    public int? ByteLength { get; init; }

    /// <summary>The identity (the Portal's org id); created if needed.</summary>
    public string? ExternalId { get; init; }

    public JsonObject? Meta { get; init; }

    public IReadOnlyList<string>? Permissions { get; init; }

    /// <summary>Unix milliseconds, at most 4102444800000 (2100-01-01).</summary>
    public long? Expires { get; init; }

    public bool? Enabled { get; init; }

    /// <summary>Rate limits set on the key (at most 50), checked when a verification names them or when auto-applied.</summary>
    public IReadOnlyList<UnkeyKeyRateLimit>? Ratelimits { get; init; }
}

/// <summary>A rate limit stored on a key (<c>keys.createKey</c>'s <c>ratelimits</c>).</summary>
public sealed record UnkeyKeyRateLimit
{
    /// <summary>3–128 characters.</summary>
    public required string Name { get; init; }

    /// <summary>At least 1.</summary>
    public long Limit { get; init; }

    /// <summary>Window in milliseconds, at least 1000.</summary>
    public long Duration { get; init; }

    /// <summary>Checked on every verification (at cost 1) even when not named.</summary>
    public bool AutoApply { get; init; }
}

/// <summary>Body of <c>POST /v2/apis.getApi</c>.</summary>
public sealed record UnkeyGetApiRequest
{
    public required string ApiId { get; init; }
}

/// <summary><c>data</c> of <c>apis.getApi</c>.</summary>
public sealed record UnkeyApiData
{
    public string? Id { get; init; }

    public string? Name { get; init; }
}

/// <summary><c>data</c> of <c>keys.createKey</c>: the plaintext key, returned this once.</summary>
public sealed record UnkeyCreateKeyData
{
    public string? KeyId { get; init; }

    public string? Key { get; init; }
}

/// <summary>Body of <c>POST /v2/keys.deleteKey</c>.</summary>
public sealed record UnkeyDeleteKeyRequest
{
    public required string KeyId { get; init; }

    /// <summary>False (the default) soft-deletes.</summary>
    public bool? Permanent { get; init; }
}

/// <summary>Body of <c>POST /v2/keys.getKey</c>.</summary>
public sealed record UnkeyGetKeyRequest
{
    public required string KeyId { get; init; }
}

/// <summary>Body of <c>POST /v2/apis.listKeys</c>.</summary>
public sealed record UnkeyListKeysRequest
{
    public required string ApiId { get; init; }

    /// <summary>1–100.</summary>
    public int? Limit { get; init; }

    public string? Cursor { get; init; }

    public string? ExternalId { get; init; }
}

/// <summary>A key as <c>keys.getKey</c> and <c>apis.listKeys</c> return it (never its secret).</summary>
public sealed record UnkeyKeyData
{
    public string? KeyId { get; init; }

    /// <summary><c>&lt;prefix&gt;_</c> plus the first 4 characters, for telling keys apart.</summary>
    public string? Start { get; init; }

    public bool Enabled { get; init; }

    /// <summary>Unix milliseconds.</summary>
    public long CreatedAt { get; init; }

    public long? UpdatedAt { get; init; }

    public long? LastUsedAt { get; init; }

    public string? Name { get; init; }

    public JsonElement? Meta { get; init; }

    /// <summary>Unix milliseconds.</summary>
    public long? Expires { get; init; }

    public IReadOnlyList<string>? Permissions { get; init; }

    public IReadOnlyList<string>? Roles { get; init; }

    public UnkeyIdentity? Identity { get; init; }
}

/// <summary>Body of <c>POST /v2/ratelimit.limit</c>.</summary>
public sealed record UnkeyRateLimitRequest
{
    public required string Namespace { get; init; }

    public required string Identifier { get; init; }

    public long Limit { get; init; }

    /// <summary>Window in milliseconds (1,000 to 2,592,000,000).</summary>
    public long Duration { get; init; }

    public long? Cost { get; init; }
}

/// <summary><c>data</c> of <c>ratelimit.limit</c> (always HTTP 200: read <see cref="Success"/>).</summary>
public sealed record UnkeyRateLimitData
{
    public bool Success { get; init; }

    public long Limit { get; init; }

    public long Remaining { get; init; }

    /// <summary>Unix milliseconds.</summary>
    public long Reset { get; init; }

    public string? OverrideId { get; init; }
}

/// <summary><c>data</c> of calls that answer <c>{}</c> (delete, update).</summary>
public sealed record UnkeyEmptyData;

/// <summary>Source-generated JSON for the wire types (no reflection: trim- and AOT-safe).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(UnkeyVerifyKeyRequest))]
[JsonSerializable(typeof(UnkeyEnvelope<UnkeyVerifyKeyData>))]
[JsonSerializable(typeof(UnkeyCreateKeyRequest))]
[JsonSerializable(typeof(UnkeyEnvelope<UnkeyCreateKeyData>))]
[JsonSerializable(typeof(UnkeyDeleteKeyRequest))]
[JsonSerializable(typeof(UnkeyGetKeyRequest))]
[JsonSerializable(typeof(UnkeyEnvelope<UnkeyKeyData>))]
[JsonSerializable(typeof(UnkeyListKeysRequest))]
[JsonSerializable(typeof(UnkeyEnvelope<IReadOnlyList<UnkeyKeyData>>))]
[JsonSerializable(typeof(UnkeyRateLimitRequest))]
[JsonSerializable(typeof(UnkeyEnvelope<UnkeyRateLimitData>))]
[JsonSerializable(typeof(UnkeyEnvelope<UnkeyEmptyData>))]
[JsonSerializable(typeof(UnkeyGetApiRequest))]
[JsonSerializable(typeof(UnkeyEnvelope<UnkeyApiData>))]
[JsonSerializable(typeof(JsonObject))]
internal sealed partial class UnkeyJsonContext : JsonSerializerContext;
