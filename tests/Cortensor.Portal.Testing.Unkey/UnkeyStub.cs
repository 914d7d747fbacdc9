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
using static Cortensor.Portal.Testing.Unkey.UnkeySchema;

namespace Cortensor.Portal.Testing.Unkey;

/// <summary>
/// A stateful WireMock stand-in for the Unkey v2 API, faithful to Unkey's server (unkeyed/unkey at fc99b6b925; the
/// project notes ../shared/reference/unkey.md) rather than to what the Portal expects:
/// <list type="bullet">
/// <item>routes <c>POST /v2/keys.verifyKey|createKey|deleteKey|updateKey|getKey</c>, <c>/v2/apis.listKeys|getApi</c>,
/// <c>/v2/ratelimit.limit</c>, <c>GET /v2/liveness</c>; the <c>{meta:{requestId}, data}</c> envelope; errors as
/// <c>{meta, error:{title, detail, status, type}}</c> (<c>application/problem+json</c> when the request accepts it);</item>
/// <item>root keys with Unkey's permission tuples (<c>api.&lt;apiId|*&gt;.&lt;action&gt;</c>) and Unkey's answers
/// when one is missing: verifyKey 200 <c>NOT_FOUND</c> (v2_keys_verify_key/handler.go, "would leak that the key
/// exists"), getKey/updateKey/deleteKey 403, createKey and listKeys a disguised 404
/// (<c>MaskInsufficientPermissionsAsNotFound</c>), getApi 403; several APIs in one workspace;</item>
/// <item>every request body checked against the spec's schema (<c>additionalProperties: false</c>, lengths,
/// patterns, ranges, required fields) with Unkey's 400 <c>invalid_input</c>;</item>
/// <item>verification as <c>internal/services/keys</c> does it: DISABLED → EXPIRED → permissions query
/// (AND/OR/parentheses, roles' permissions included) → rate limits → credits; auto-apply limits at cost 1; an ad-hoc
/// limit (limit and duration given) replaces a configured one of the same name (validation.go); key-level limits
/// before identity-level ones (get.go); 412 for an unknown named limit; Unkey's sliding window
/// (<c>internal/services/ratelimit/ratelimit.go</c>: current + previous × (1 − elapsed)) with all-or-nothing checks when
/// several limits apply; credits charged 1 when <c>credits</c> is omitted and the key has credits (<c>DefaultCost</c>);
/// zero values left out of answers (Go <c>omitempty</c>).</item>
/// </list>
/// Keys are <c>prefix_base58</c> stored only as their SHA-256. Expiry and rate limit windows read the given clock.
/// Faults (status, body, delay, or a delay after the request was handled) can be queued or made permanent.
/// </summary>
public sealed class UnkeyStub : IDisposable
{
    public const string RootKey = "unkey_3ZfStubRootKeyNeverLogged9x";
    public const string ApiId = "api_stub1234";
    public const string WorkspaceId = "ws_stub";
    public const string Base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

    /// <summary>What the Portal's root key needs on <see cref="ApiId"/> (plus standalone rate limits).</summary>
    public static readonly string[] PortalPermissions = PortalPermissionsFor(ApiId);

    private const long MaxExpires = 4_102_444_800_000; // spec: "January 1, 2100 - reasonable future limit"
    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };

    // Request bodies, from svc/api/openapi/spec/paths/v2/<group>/<op>/V2…RequestBody.yaml.
    private static readonly Shape VerifyBody = Obj(
        ("key", Str(1, 512).Req()),
        ("tags", Array(Str(1, 512), 20)),
        ("permissions", Str(1, 1000)),
        ("credits", Obj(("cost", Int(0, 1_000_000_000_000).Req()))),
        ("ratelimits", Array(Obj(false, true, ("name", Str(3, 255).Req()), ("cost", Int(0)), ("limit", Int(0)), ("duration", Int(0))))),
        ("migrationId", Str(0, 256)));

    private static readonly Shape RateLimitSetting = Obj(("name", Str(3, 128).Req()), ("limit", Int(1).Req()), ("duration", Int(1000).Req()), ("autoApply", Bool()));

    private static readonly Shape CreateBody = Obj(
        ("apiId", Str(3, 255, Identifier).Req()),
        ("prefix", Str(1, 16, Identifier)),
        ("name", Str(1, 255)),
        ("byteLength", Int(16, 255)),
        ("externalId", Str(1, 255, ExternalIdPattern)),
        ("meta", Map(100)),
        ("roles", Array(Str(1, 128), 100)),
        ("permissions", Array(Str(1, 128, PermissionSlug), 1000)),
        ("expires", Int(0, MaxExpires)),
        ("credits", Obj(("remaining", Int(0).Req().OrNull()), ("refill", Map(3)))),
        ("ratelimits", Array(RateLimitSetting, 50)),
        ("enabled", Bool()),
        ("recoverable", Bool()));

    private static readonly Shape UpdateBody = Obj(
        ("keyId", Str(3, 255, Identifier).Req()),
        ("name", Str(1, 255).OrNull()),
        ("externalId", Str(1, 255, ExternalIdPattern).OrNull()),
        ("meta", Map(100, nullable: true)),
        ("expires", Int(0, MaxExpires).OrNull()),
        ("credits", Map(2, nullable: true)),
        ("ratelimits", Array(RateLimitSetting, 50)),
        ("enabled", Bool()),
        ("roles", Array(Str(1, 128), 100)),
        ("permissions", Array(Str(1, 128, PermissionSlug), 1000)));

    private static readonly Shape KeyIdBody = Obj(("keyId", Str(3, 255, Identifier).Req()), ("decrypt", Bool()));
    private static readonly Shape DeleteBody = Obj(("keyId", Str(3, 255, Identifier).Req()), ("permanent", Bool()));

    private static readonly Shape ListBody = Obj(
        ("apiId", Str(1, 255).Req()),
        ("limit", Int(1, 100)),
        ("cursor", Str(0, 255)),
        ("externalId", Str(1, 255)),
        ("decrypt", Bool()),
        ("revalidateKeysCache", Bool()));

    private static readonly Shape GetApiBody = Obj(("apiId", Str(8, 255, Identifier).Req()));

    private static readonly Shape LimitBody = Obj(
        ("namespace", Str(1, 512).Req()),
        ("identifier", Str(1, 512).Req()),
        ("limit", Int(1).Req()),
        ("duration", Int(1000, 2_592_000_000).Req()),
        ("cost", Int(0)));

    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, string> _apis = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Workspace, HashSet<string> Permissions)> _rootKeys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, HashSet<string>> _roles = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StubIdentity> _identities = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StubKey> _byHash = new(StringComparer.Ordinal);
    private readonly Dictionary<string, StubKey> _byId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _windowCounts = new(StringComparer.Ordinal);
    private readonly Queue<StubFault> _faults = new();
    private readonly List<JsonObject> _verifyBodies = [];
    private readonly TimeSpan _verifyLatency;
    private readonly bool _keepRequests;
    private long _sequence;
    private int _handled;

    /// <summary>Starts the stub with one workspace, one API and one root key holding <see cref="PortalPermissionsFor"/> it.</summary>
    /// <param name="time">Clock for expiry and rate limit windows (system clock when null).</param>
    /// <param name="rootKey">The Portal's root key.</param>
    /// <param name="apiId">The API (keyspace) that exists from the start.</param>
    /// <param name="url">Where to listen; the default picks a free port on 127.0.0.1.</param>
    /// <param name="verifyLatency">Added before every <c>keys.verifyKey</c> answer (real time), standing in for the
    /// network and service time of a hosted Unkey; zero for tests.</param>
    /// <param name="keepRequests">Keep every request (WireMock's log, <see cref="VerifyBodies"/>) for tests to
    /// inspect; a long-running load (the benchmark suite) turns this off so memory stays flat.</param>
    public UnkeyStub(
        TimeProvider? time = null,
        string rootKey = RootKey,
        string apiId = ApiId,
        string url = "http://127.0.0.1:0",
        TimeSpan verifyLatency = default,
        bool keepRequests = true)
    {
        _time = time ?? TimeProvider.System;
        _verifyLatency = verifyLatency;
        _keepRequests = keepRequests;
        PortalRootKey = rootKey;
        PortalApiId = apiId;
        _apis[apiId] = WorkspaceId;
        _rootKeys[rootKey] = (WorkspaceId, [.. PortalPermissionsFor(apiId)]);
        Server = WireMockServer.Start(new WireMockServerSettings { Urls = [url], MaxRequestLogCount = keepRequests ? null : 0 });
        Server.Given(Request.Create().WithPath("/v2/*").UsingAnyMethod())
            .RespondWith(Response.Create().WithCallback(HandleAsync));
    }

    public WireMockServer Server { get; }

    public Uri Url => new(Server.Url!);

    /// <summary>The root key the stub was started with (<see cref="RootKey"/> unless given).</summary>
    public string PortalRootKey { get; }

    /// <summary>The API the stub was started with (<see cref="ApiId"/> unless given).</summary>
    public string PortalApiId { get; }

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

    /// <summary>Answers the next request with <paramref name="fault"/> instead of (or after) handling it.</summary>
    public void EnqueueFault(StubFault fault)
    {
        lock (_gate)
        {
            _faults.Enqueue(fault);
        }
    }

    public int CallsTo(string operation) => Server.LogEntries.Count(e => e.RequestMessage.Path == "/v2/" + operation);

    /// <summary>Adds another API (keyspace), by default in the stub's one workspace.</summary>
    public void AddApi(string apiId, string workspaceId = WorkspaceId)
    {
        lock (_gate)
        {
            _apis[apiId] = workspaceId;
        }
    }

    /// <summary>Adds (or replaces) a root key with exactly these permissions, for example <c>api.*.verify_key</c>.</summary>
    public void SetRootKey(string rootKey, string[] permissions, string workspaceId = WorkspaceId)
    {
        lock (_gate)
        {
            _rootKeys[rootKey] = (workspaceId, [.. permissions]);
        }
    }

    /// <summary>What the Portal's root key needs on <paramref name="apiId"/> (plus standalone rate limits).</summary>
    public static string[] PortalPermissionsFor(string apiId) =>
    [
        $"api.{apiId}.verify_key", $"api.{apiId}.create_key", $"api.{apiId}.read_key", $"api.{apiId}.update_key",
        $"api.{apiId}.delete_key", $"api.{apiId}.read_api", "ratelimit.*.limit",
    ];

    /// <summary>Changes what <see cref="PortalRootKey"/> may do (an operator editing it in the dashboard).</summary>
    public void SetRootKeyPermissions(params string[] permissions) => SetRootKey(PortalRootKey, permissions);

    /// <summary>Defines a role (as the dashboard does) that keys can be given.</summary>
    public void DefineRole(string name, params string[] permissions)
    {
        lock (_gate)
        {
            _roles[name] = [.. permissions];
        }
    }

    /// <summary>Adds a rate limit to the identity with <paramref name="externalId"/> (created if needed).</summary>
    public void SetIdentityRateLimit(string externalId, string name, long limit, long durationMs, bool autoApply)
    {
        lock (_gate)
        {
            var identity = IdentityFor(WorkspaceId, externalId);
            identity.Ratelimits.RemoveAll(r => r.Name == name);
            identity.Ratelimits.Add(new StubRateLimit("rl_" + RandomBase58(8), name, limit, durationMs, autoApply));
        }
    }

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
        string? forcedCode = null,
        string? apiId = null,
        IReadOnlyList<string>? roles = null)
    {
        apiId ??= PortalApiId;
        var key = prefix + "_" + RandomBase58(32);
        lock (_gate)
        {
            var stored = new StubKey
            {
                KeyId = "key_" + RandomBase58(12),
                Hash = Hash(key),
                Start = key[..(prefix.Length + 5)],
                ApiId = apiId,
                Workspace = _apis[apiId],
                Identity = externalId is null ? null : IdentityFor(_apis[apiId], externalId),
                Meta = meta,
                Enabled = enabled,
                Expires = expiresMs,
                Credits = credits,
                Permissions = [.. permissions ?? []],
                Roles = [.. roles ?? []],
                Ratelimits = [.. (ratelimits ?? []).Select(r => new StubRateLimit("rl_" + RandomBase58(8), r.Name, r.Limit, r.DurationMs, r.AutoApply))],
                CreatedAt = NowMs(),
                ForcedCode = forcedCode,
            };
            _byHash[stored.Hash] = stored;
            _byId[stored.KeyId] = stored;
            return (key, stored.KeyId);
        }
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

    public string? NameOf(string keyId)
    {
        lock (_gate)
        {
            return _byId[keyId].Name;
        }
    }

    /// <summary>Credits the key has left (null: unlimited).</summary>
    public long? CreditsOf(string keyId)
    {
        lock (_gate)
        {
            return _byId[keyId].Credits;
        }
    }

    /// <summary>The names of the rate limits set on the key itself.</summary>
    public IReadOnlyList<(string Name, long Limit, long DurationMs, bool AutoApply)> RateLimitsOf(string keyId)
    {
        lock (_gate)
        {
            return [.. _byId[keyId].Ratelimits.Select(r => (r.Name, r.Limit, r.DurationMs, r.AutoApply))];
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
        if (_verifyLatency > TimeSpan.Zero && request.Path == "/v2/keys.verifyKey")
        {
            await Task.Delay(_verifyLatency);
        }

        StubFault? fault;
        lock (_gate)
        {
            fault = Outage ?? (_faults.Count > 0 ? _faults.Dequeue() : null);
        }

        if (fault is null)
        {
            return Handle(request);
        }

        if (fault.AfterHandling)
        {
            // The server did the work (and charged for it); the answer is late, as when the client times out.
            var handled = Handle(request);
            await Task.Delay(fault.Delay);
            return handled;
        }

        if (fault.Delay > TimeSpan.Zero)
        {
            await Task.Delay(fault.Delay);
        }

        if (fault.Status is null)
        {
            return Handle(request); // only slow: then answer normally
        }

        var response = Respond(fault.Status.Value, fault.Body ?? ErrorBody(fault.Status.Value, "Injected fault", "unkey/application/unexpected_error"), fault.ContentType ?? ErrorContentType(request));
        foreach (var (name, value) in fault.Headers ?? [])
        {
            response.AddHeader(name, value);
        }

        return response;
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

        // svc/api/internal/middleware/errors.go and v2_keys_verify_key/401_test.go.
        var authorization = Header(request, "Authorization");
        if (authorization is null)
        {
            return Error(request, 400, "Bad Request", "Authorization header is missing, but required.", "unkey/authentication/missing");
        }

        if (!authorization.StartsWith("Bearer ", StringComparison.Ordinal))
        {
            return Error(request, 400, "Bad Request", "You must provide a valid root key in the form: \"Bearer <root key>\".", "unkey/authentication/malformed");
        }

        JsonObject body;
        try
        {
            body = JsonNode.Parse(request.Body ?? "")?.AsObject() ?? throw new JsonException("null body");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            return InvalidInput("body", "The request body is not a JSON object.");
        }

        lock (_gate)
        {
            if (!_rootKeys.TryGetValue(authorization["Bearer ".Length..], out var root))
            {
                return Error(request, 401, "Unauthorized", "The provided root key is invalid.", "unkey/authentication/key_not_found");
            }

            var principal = new Principal(root.Workspace, root.Permissions);
            var schema = request.Path switch
            {
                "/v2/keys.verifyKey" => VerifyBody,
                "/v2/keys.createKey" => CreateBody,
                "/v2/keys.deleteKey" => DeleteBody,
                "/v2/keys.updateKey" => UpdateBody,
                "/v2/keys.getKey" => KeyIdBody,
                "/v2/apis.listKeys" => ListBody,
                "/v2/apis.getApi" => GetApiBody,
                "/v2/ratelimit.limit" => LimitBody,
                _ => null,
            };
            if (schema is null)
            {
                return Error(request, 404, "Not Found", "No such route.", "unkey/application/not_found");
            }

            if (_keepRequests && request.Path == "/v2/keys.verifyKey")
            {
                _verifyBodies.Add(body.DeepClone().AsObject());
            }

            if (Check(body, schema, "body") is { } invalid)
            {
                return InvalidInput(invalid.Location, invalid.Message);
            }

            return request.Path switch
            {
                "/v2/keys.verifyKey" => VerifyKey(request, principal, body),
                "/v2/keys.createKey" => CreateKey(request, principal, body),
                "/v2/keys.deleteKey" => DeleteKey(request, principal, body),
                "/v2/keys.updateKey" => UpdateKey(request, principal, body),
                "/v2/keys.getKey" => GetKey(request, principal, body),
                "/v2/apis.listKeys" => ListKeys(request, principal, body),
                "/v2/apis.getApi" => GetApi(request, principal, body),
                _ => Limit(request, principal, body),
            };
        }
    }

    private ResponseMessage VerifyKey(IRequestMessage request, Principal principal, JsonObject body)
    {
        var notFound = Ok(new JsonObject { ["valid"] = false, ["code"] = "NOT_FOUND" });

        // v2_keys_verify_key/handler.go: unknown, deleted, another workspace's, a deleted API's, or one the root key
        // may not verify: all answer 200 NOT_FOUND, "because returning a permission error here would leak that the key exists".
        if (!_byHash.TryGetValue(Hash(body["key"]!.GetValue<string>()), out var key) || key.Deleted || key.Workspace != principal.Workspace || !_apis.ContainsKey(key.ApiId))
        {
            return notFound;
        }

        if (!principal.Can(key.ApiId, "verify_key"))
        {
            return notFound;
        }

        // The permissions query is parsed by the handler before any check, so a bad one is a 400 even for a disabled key.
        PermissionQuery? query = null;
        if (body["permissions"]?.GetValue<string>() is { } text)
        {
            query = PermissionQuery.TryParse(text);
            if (query is null)
            {
                return Error(request, 400, "Bad Request", $"The permissions query '{text}' is not valid.", "user/bad_request/permissions_query_syntax_error");
            }
        }

        if (key.ForcedCode is { } forced)
        {
            return Ok(Describe(key, forced == "VALID", forced, ratelimits: null));
        }

        // internal/services/keys/get.go sets DISABLED, then EXPIRED; Verify() stops at the first non-VALID status.
        if (!key.Enabled)
        {
            return Ok(Describe(key, false, "DISABLED", null));
        }

        var now = NowMs();
        if (key.Expires is { } expires && expires <= now)
        {
            return Ok(Describe(key, false, "EXPIRED", null));
        }

        if (query is not null && !query.IsSatisfiedBy(EffectivePermissions(key)))
        {
            return Ok(Describe(key, false, "INSUFFICIENT_PERMISSIONS", null));
        }

        // validation.go withRateLimits: auto-apply limits at cost 1, then the requested ones; an ad-hoc one (limit
        // and duration) is keyed on the key and replaces a configured limit of the same name.
        var configured = ConfiguredLimits(key);
        var checks = new Dictionary<string, (StubRateLimit Limit, long Cost, string Identifier)>(StringComparer.Ordinal);
        foreach (var (name, (limit, identifier)) in configured)
        {
            if (limit.AutoApply)
            {
                checks[name] = (limit, 1, identifier);
            }
        }

        foreach (var node in body["ratelimits"]?.AsArray() ?? [])
        {
            var name = node!["name"]!.GetValue<string>();
            var cost = node["cost"]?.GetValue<long>() ?? 1;
            if (node["limit"] is { } adHocLimit && node["duration"] is { } adHocDuration)
            {
                checks[name] = (new StubRateLimit("", name, adHocLimit.GetValue<long>(), adHocDuration.GetValue<long>(), false), cost, key.KeyId);
                continue;
            }

            if (!configured.TryGetValue(name, out var found))
            {
                var detail = $"ratelimit '{name}' was requested but does not exist for key '{key.KeyId}'"
                    + (key.Identity is { } identity ? $" nor identity: '{identity.Id}' external ID: '{identity.ExternalId}'" : " and there is no identity connected.");
                return Error(request, 412, "Precondition Failed", detail, "unkey/application/precondition_failed");
            }

            checks[name] = (found.Limit, cost, found.Identifier);
        }

        var states = new JsonArray();
        var exceeded = false;
        if (checks.Count > 0 && checks.Values.All(c => c.Limit.Limit > 0 && c.Limit.DurationMs >= 1000))
        {
            // The limiter refuses limit 0 or windows under 1 s with an error, and verifyKey then fails open.
            var results = RateLimit([.. checks.Values.Select(c => (c.Limit.Name, c.Identifier, c.Limit.Limit, c.Limit.DurationMs, c.Cost))], now);
            var i = 0;
            foreach (var (limit, _, _) in checks.Values)
            {
                var result = results[i++];
                exceeded |= !result.Success;
                var state = new JsonObject
                {
                    ["id"] = limit.Id,
                    ["name"] = limit.Name,
                    ["limit"] = limit.Limit,
                    ["duration"] = limit.DurationMs,
                    ["reset"] = result.Reset, // absolute unix ms, as the server sends it
                };
                if (result.Remaining > 0)
                {
                    state["remaining"] = result.Remaining;
                }

                if (!result.Success)
                {
                    state["exceeded"] = true;
                }

                if (limit.AutoApply)
                {
                    state["autoApply"] = true;
                }

                states.Add(state);
            }
        }

        if (exceeded)
        {
            return Ok(Describe(key, false, "RATE_LIMITED", states));
        }

        // handler.go: "If a custom cost was specified, use it, otherwise use a DefaultCost of 1" when the key has credits.
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

    /// <summary>The sliding-window check of <c>internal/services/ratelimit</c>: one limit alone, or several all-or-nothing.</summary>
    private List<(bool Success, long Remaining, long Reset)> RateLimit(IReadOnlyList<(string Name, string Identifier, long Limit, long DurationMs, long Cost)> requests, long now)
    {
        var prepared = requests.Select(r =>
        {
            var sequence = now / r.DurationMs;
            var prefix = $"{r.Name}\u0000{r.Identifier}\u0000{r.DurationMs}\u0000";
            var current = prefix + sequence.ToString(CultureInfo.InvariantCulture);
            var previous = _windowCounts.GetValueOrDefault(prefix + (sequence - 1).ToString(CultureInfo.InvariantCulture));
            var elapsed = (double)(now - (sequence * r.DurationMs)) / r.DurationMs;
            return (Request: r, Current: current, Weighted: (long)(previous * (1.0 - elapsed)), Reset: (sequence * r.DurationMs) + r.DurationMs);
        }).ToList();

        var effective = prepared.Select(p => _windowCounts.GetValueOrDefault(p.Current) + p.Weighted + p.Request.Cost).ToList();
        var allPassed = prepared.Select((p, i) => effective[i] <= p.Request.Limit).All(ok => ok);
        var results = new List<(bool, long, long)>();
        for (var i = 0; i < prepared.Count; i++)
        {
            var (r, current, _, reset) = prepared[i];
            var passed = effective[i] <= r.Limit;
            if (allPassed)
            {
                _windowCounts[current] = _windowCounts.GetValueOrDefault(current) + r.Cost;
            }

            // Single limit: a denial answers remaining 0. Several: each says whether it passed on its own, and an
            // entry that passed gets its cost back in remaining when another one failed (nothing was consumed).
            var remaining = !passed ? 0 : r.Limit - effective[i] + (allPassed ? 0 : r.Cost);
            results.Add((passed, Math.Max(0, remaining), reset));
        }

        return results;
    }

    /// <summary>The key's and its identity's limits by name, the key's first (get.go: "Key rate limits take precedence").</summary>
    private static Dictionary<string, (StubRateLimit Limit, string Identifier)> ConfiguredLimits(StubKey key)
    {
        var limits = new Dictionary<string, (StubRateLimit, string)>(StringComparer.Ordinal);
        foreach (var limit in key.Ratelimits)
        {
            limits[limit.Name] = (limit, key.KeyId);
        }

        foreach (var limit in key.Identity?.Ratelimits ?? [])
        {
            limits.TryAdd(limit.Name, (limit, key.Identity!.Id));
        }

        return limits;
    }

    private List<string> EffectivePermissions(StubKey key)
        => [.. key.Permissions.Concat(key.Roles.SelectMany(r => _roles.TryGetValue(r, out var permissions) ? permissions : [])).Distinct(StringComparer.Ordinal)];

    private JsonObject Describe(StubKey key, bool valid, string code, JsonArray? ratelimits)
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

        // The code returns the key's full lists whenever they are non-empty (the spec says only when checked).
        if (EffectivePermissions(key) is { Count: > 0 } permissions)
        {
            data["permissions"] = Strings(permissions);
        }

        if (key.Roles.Count > 0)
        {
            data["roles"] = Strings(key.Roles);
        }

        if (key.Identity is { } identity)
        {
            data["identity"] = IdentityJson(identity);
        }

        if (ratelimits is { Count: > 0 })
        {
            data["ratelimits"] = ratelimits;
        }

        return data;
    }

    private static JsonObject IdentityJson(StubIdentity identity)
    {
        var json = new JsonObject { ["id"] = identity.Id, ["externalId"] = identity.ExternalId };
        if (identity.Ratelimits.Count > 0)
        {
            json["ratelimits"] = new JsonArray([.. identity.Ratelimits.Select(r => (JsonNode?)LimitJson(r))]);
        }

        return json;
    }

    private static JsonObject LimitJson(StubRateLimit limit)
        => new() { ["id"] = limit.Id, ["name"] = limit.Name, ["limit"] = limit.Limit, ["duration"] = limit.DurationMs, ["autoApply"] = limit.AutoApply };

    private ResponseMessage CreateKey(IRequestMessage request, Principal principal, JsonObject body)
    {
        var apiId = body["apiId"]!.GetValue<string>();

        // v2_keys_create_key/handler.go: an unknown API, another workspace's, or one the root key may not create
        // keys in are all the same 404 (MaskInsufficientPermissionsAsNotFound).
        if (!_apis.TryGetValue(apiId, out var workspace) || workspace != principal.Workspace || !principal.Can(apiId, "create_key"))
        {
            return Error(request, 404, "Not Found", "The specified API was not found.", "unkey/data/api_not_found");
        }

        if (body["credits"]?["refill"] is not null && body["credits"]?["remaining"] is null)
        {
            return InvalidInput("body.credits.refill", "remaining is required when refill is set");
        }

        var roles = body["roles"]?.AsArray().Select(r => r!.GetValue<string>()).ToList() ?? [];
        if (roles.FirstOrDefault(r => !_roles.ContainsKey(r)) is { } unknownRole)
        {
            return Error(request, 404, "Not Found", $"Role '{unknownRole}' was not found.", "unkey/data/role_not_found");
        }

        var prefix = body["prefix"]?.GetValue<string>();
        var random = RandomBase58(body["byteLength"]?.GetValue<int>() ?? 16);
        var plaintext = prefix is null ? random : prefix + "_" + random;
        var externalId = body["externalId"]?.GetValue<string>();
        var key = new StubKey
        {
            KeyId = "key_" + RandomBase58(12),
            Hash = Hash(plaintext),
            Start = prefix is null ? random[..4] : prefix + "_" + random[..4],
            ApiId = apiId,
            Workspace = workspace,
            Name = body["name"]?.GetValue<string>(),
            Identity = externalId is null ? null : IdentityFor(workspace, externalId),
            Meta = body["meta"]?.DeepClone().AsObject(),
            Enabled = body["enabled"]?.GetValue<bool>() ?? true,
            Expires = body["expires"]?.GetValue<long>(),
            Credits = body["credits"]?["remaining"]?.GetValue<long>(),
            Permissions = [.. body["permissions"]?.AsArray().Select(p => p!.GetValue<string>()) ?? []],
            Roles = roles,
            Ratelimits = ReadLimits(body["ratelimits"]),
            CreatedAt = NowMs() + Interlocked.Increment(ref _sequence), // distinct, ordered
        };
        _byHash[key.Hash] = key;
        _byId[key.KeyId] = key;
        return Ok(new JsonObject { ["keyId"] = key.KeyId, ["key"] = plaintext });
    }

    private static List<StubRateLimit> ReadLimits(JsonNode? limits)
        => [.. limits?.AsArray().Select(r => new StubRateLimit("rl_" + RandomBase58(8), r!["name"]!.GetValue<string>(), r["limit"]!.GetValue<long>(), r["duration"]!.GetValue<long>(), r["autoApply"]?.GetValue<bool>() ?? false)) ?? []];

    private StubIdentity IdentityFor(string workspace, string externalId)
    {
        var id = workspace + "\u0000" + externalId;
        if (!_identities.TryGetValue(id, out var identity))
        {
            identity = new StubIdentity("id_" + RandomBase58(8), externalId);
            _identities[id] = identity;
        }

        return identity;
    }

    private ResponseMessage DeleteKey(IRequestMessage request, Principal principal, JsonObject body)
    {
        if (FindForManagement(request, principal, body, "delete_key", out var key) is { } refused)
        {
            return refused;
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

    private ResponseMessage UpdateKey(IRequestMessage request, Principal principal, JsonObject body)
    {
        if (FindForManagement(request, principal, body, "update_key", out var key) is { } refused)
        {
            return refused;
        }

        // Left out: kept. null: cleared. roles, permissions and ratelimits replace the whole set.
        foreach (var (name, value) in body)
        {
            switch (name)
            {
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
                    key.Identity = value is null ? null : IdentityFor(key.Workspace, value.GetValue<string>());
                    break;
                case "credits":
                    key.Credits = value?["remaining"]?.GetValue<long>();
                    break;
                case "ratelimits":
                    key.Ratelimits = ReadLimits(value);
                    break;
                case "permissions":
                    key.Permissions = [.. value!.AsArray().Select(p => p!.GetValue<string>())];
                    break;
                case "roles":
                    key.Roles = [.. value!.AsArray().Select(p => p!.GetValue<string>())];
                    break;
            }
        }

        return Ok(new JsonObject());
    }

    private ResponseMessage GetKey(IRequestMessage request, Principal principal, JsonObject body)
        => FindForManagement(request, principal, body, "read_key", out var key) ?? Ok(KeyResponse(key));

    /// <summary>getKey, updateKey, deleteKey: 404 for no live key in the workspace, then 403 without the permission (not masked).</summary>
    private ResponseMessage? FindForManagement(IRequestMessage request, Principal principal, JsonObject body, string action, out StubKey key)
    {
        if (!_byId.TryGetValue(body["keyId"]!.GetValue<string>(), out key!) || key.Deleted || key.Workspace != principal.Workspace)
        {
            return Error(request, 404, "Not Found", "The specified key was not found.", "unkey/data/key_not_found");
        }

        return principal.Can(key.ApiId, action) ? null : Forbidden(request, key.ApiId, action);
    }

    private ResponseMessage ListKeys(IRequestMessage request, Principal principal, JsonObject body)
    {
        var apiId = body["apiId"]!.GetValue<string>();

        // v2_apis_list_keys: read_key and read_api, or a 404 that does not say whether the API exists.
        if (!_apis.TryGetValue(apiId, out var workspace) || workspace != principal.Workspace || !principal.Can(apiId, "read_key") || !principal.Can(apiId, "read_api"))
        {
            return Error(request, 404, "Not Found", "The requested API does not exist or has been deleted.", "unkey/data/api_not_found");
        }

        var limit = body["limit"]?.GetValue<int>() ?? 100;
        var externalId = body["externalId"]?.GetValue<string>();
        var cursor = body["cursor"]?.GetValue<string>();
        var keys = _byId.Values
            .Where(k => !k.Deleted && k.ApiId == apiId && (externalId is null || k.Identity?.ExternalId == externalId))
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

    private ResponseMessage GetApi(IRequestMessage request, Principal principal, JsonObject body)
    {
        // v2_apis_get_api/handler.go: the permission is checked first (403), then the API is looked up (404).
        var apiId = body["apiId"]!.GetValue<string>();
        if (!principal.Can(apiId, "read_api"))
        {
            return Forbidden(request, apiId, "read_api");
        }

        return _apis.TryGetValue(apiId, out var workspace) && workspace == principal.Workspace
            ? Ok(new JsonObject { ["id"] = apiId, ["name"] = "stub-" + apiId })
            : Error(request, 404, "Not Found", "The requested API does not exist or has been deleted.", "unkey/data/api_not_found");
    }

    private ResponseMessage Limit(IRequestMessage request, Principal principal, JsonObject body)
    {
        var ns = body["namespace"]!.GetValue<string>();
        if (!principal.Permissions.Contains("ratelimit.*.limit") && !principal.Permissions.Contains($"ratelimit.{ns}.limit"))
        {
            return Error(request, 403, "Insufficient Permissions", $"Missing one of these permissions: 'ratelimit.*.limit' or 'ratelimit.{ns}.limit'", "unkey/authorization/insufficient_permissions");
        }

        var limit = body["limit"]!.GetValue<long>();
        var result = RateLimit([(ns, body["identifier"]!.GetValue<string>(), limit, body["duration"]!.GetValue<long>(), body["cost"]?.GetValue<long>() ?? 1)], NowMs())[0];
        return Ok(new JsonObject { ["success"] = result.Success, ["limit"] = limit, ["remaining"] = result.Remaining, ["reset"] = result.Reset });
    }

    private JsonObject KeyResponse(StubKey key)
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

        if (EffectivePermissions(key) is { Count: > 0 } permissions)
        {
            data["permissions"] = Strings(permissions);
        }

        if (key.Roles.Count > 0)
        {
            data["roles"] = Strings(key.Roles);
        }

        if (key.Credits is { } credits)
        {
            data["credits"] = new JsonObject { ["remaining"] = credits };
        }

        if (key.Identity is { } identity)
        {
            data["identity"] = IdentityJson(identity);
        }

        if (key.Ratelimits.Count > 0)
        {
            data["ratelimits"] = new JsonArray([.. key.Ratelimits.Select(r => (JsonNode?)LimitJson(r))]);
        }

        return data;
    }

    private static JsonArray Strings(IEnumerable<string> values) => new([.. values.Select(v => (JsonNode?)JsonValue.Create(v))]);

    private ResponseMessage Forbidden(IRequestMessage request, string apiId, string action)
        => Error(request, 403, "Insufficient Permissions", $"Missing one of these permissions: 'api.*.{action}' or 'api.{apiId}.{action}'", "unkey/authorization/insufficient_permissions");

    private static ResponseMessage InvalidInput(string location, string message)
    {
        // Schema validation errors are always application/json, whatever the Accept header says.
        var error = JsonNode.Parse(ErrorBody(400, "Bad Request", "unkey/application/invalid_input"))!.AsObject();
        error["error"]!["detail"] = "One or more fields failed validation";
        error["error"]!["errors"] = new JsonArray(new JsonObject { ["location"] = location, ["message"] = message });
        return Respond(400, error.ToJsonString(Compact), "application/json");
    }

    private static ResponseMessage Error(IRequestMessage request, int status, string title, string detail, string type)
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

    /// <summary>A root key: its workspace and permission tuples; <c>api.*.x</c> grants x on every API.</summary>
    private sealed record Principal(string Workspace, HashSet<string> Permissions)
    {
        public bool Can(string apiId, string action) => Permissions.Contains($"api.*.{action}") || Permissions.Contains($"api.{apiId}.{action}");
    }

    private sealed class StubKey
    {
        public required string KeyId { get; init; }

        public required string Hash { get; init; }

        public required string Start { get; init; }

        public required string ApiId { get; init; }

        public required string Workspace { get; init; }

        public string? Name { get; set; }

        public StubIdentity? Identity { get; set; }

        public JsonObject? Meta { get; set; }

        public bool Enabled { get; set; } = true;

        public long? Expires { get; set; }

        public long? Credits { get; set; }

        public List<string> Permissions { get; set; } = [];

        public List<string> Roles { get; set; } = [];

        public List<StubRateLimit> Ratelimits { get; set; } = [];

        public long CreatedAt { get; init; }

        public bool Deleted { get; set; }

        public string? ForcedCode { get; init; }
    }

    private sealed record StubIdentity(string Id, string ExternalId)
    {
        public List<StubRateLimit> Ratelimits { get; } = [];
    }

    private sealed record StubRateLimit(string Id, string Name, long Limit, long DurationMs, bool AutoApply);
}

/// <summary>What the stub answers instead of handling a request: a status with a body, a delay, or both.</summary>
/// <param name="Status">The status, or null to only delay and then answer normally.</param>
/// <param name="Body">The body (default: an Unkey error body for the status).</param>
/// <param name="ContentType">The content type (default: as Unkey would choose for the request).</param>
/// <param name="Delay">Wait this long first (real time).</param>
/// <param name="Headers">Extra headers, for example <c>Retry-After</c>.</param>
/// <param name="AfterHandling">Handle the request first (its effects happen), then wait <paramref name="Delay"/> before answering: a lost answer.</param>
public sealed record StubFault(int? Status, string? Body = null, string? ContentType = null, TimeSpan Delay = default, IReadOnlyList<(string Name, string Value)>? Headers = null, bool AfterHandling = false);
