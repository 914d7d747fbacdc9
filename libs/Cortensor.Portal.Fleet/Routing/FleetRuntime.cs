using System.Collections.Frozen;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Protocols;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Routing;

/// <summary>A public model alias as customers see it, plus what the gateway needs to serve it.</summary>
public sealed record CatalogModel
{
    public required string Alias { get; init; }

    public required int ContextTokens { get; init; }

    public required int MaxOutputTokens { get; init; }

    public required string OwnedBy { get; init; }

    public required long Created { get; init; }

    /// <summary>Internal: the pool serving this alias. Never shown to customers.</summary>
    public required string Pool { get; init; }

    public required PromptFormat PromptFormat { get; init; }

    public required int PromptType { get; init; }

    public required int TaskTimeoutSeconds { get; init; }

    public int? PrecommitTimeoutSeconds { get; init; }

    public required int HttpTimeoutSlackSeconds { get; init; }

    public required SamplingDefaults Defaults { get; init; }
}

/// <summary>The public catalog: enabled aliases only.</summary>
public interface IModelCatalog
{
    /// <summary>Enabled models, ordered by alias.</summary>
    IReadOnlyList<CatalogModel> Models { get; }

    /// <summary>Finds an enabled model by alias (case-insensitive).</summary>
    bool TryGetModel(string alias, out CatalogModel model);
}

/// <summary>Picks the (router, session) pair that serves the next request of a pool.</summary>
public interface IRouterSelector
{
    /// <summary>False when the pool has no enabled, reachable member.</summary>
    bool TrySelect(string pool, out RouterTarget target);

    /// <summary>
    /// Like <see cref="TrySelect(string, out RouterTarget)"/>, but never the (router, session) member of
    /// <paramref name="failed"/>: the member to fail over to. False when the pool has no other one.
    /// </summary>
    bool TrySelectOther(string pool, RouterTarget failed, out RouterTarget target)
    {
        target = null!;
        return false;
    }
}

/// <summary>
/// How many members of a pool selection could pick now: every enabled member of an enabled router (a simulated router
/// once its simulator runs) that <see cref="IRouterMemberHealth"/> does not hold out (a recent 404); the fleet
/// readiness check follows.
/// </summary>
public interface IPoolRoutability
{
    /// <summary>Members of <paramref name="pool"/> that could serve a request now; 0 for an unknown or disabled pool.</summary>
    int CountRoutableMembers(string pool);

    /// <summary>How many of those members are simulated routers (canned answers from the built-in simulator).</summary>
    int CountSimulatedRoutableMembers(string pool);
}

/// <summary>
/// Where simulated routers live. The built-in simulator host implements it; a router marked
/// <see cref="RouterOptions.Simulated"/> is served only once its simulator has started.
/// </summary>
public interface ISimulatedRouterDirectory
{
    bool TryGetEndpoint(string routerId, out Uri baseUrl, out string apiKey);

    /// <summary>The running simulator of a simulated router (its options can be changed live; its stats read).</summary>
    bool TryGetServer(string routerId, out Cortensor.Portal.Fleet.Simulator.RouterSimulatorServer server);
}

/// <summary>
/// Runtime view of <see cref="FleetOptions"/>: an immutable snapshot rebuilt whenever options change, read
/// without locks on the hot path. Selection is round robin over enabled members of enabled routers, skipping members
/// that <see cref="IRouterMemberHealth"/> holds out. Stream slots (<see cref="IStreamLeases"/>) outlive snapshots, so a
/// reload never forgets an open stream.
/// </summary>
internal sealed class FleetRuntime : IModelCatalog, IRouterSelector, IPoolRoutability, IStreamLeases, IDisposable
{
    private readonly ISimulatedRouterDirectory? _simulators;
    private readonly IRouterMemberHealth? _health;
    private readonly IDisposable? _subscription;
    private readonly StreamSlots _streams;
    private volatile Snapshot _snapshot;

    public FleetRuntime(
        IOptionsMonitor<FleetOptions> options,
        IEnumerable<ISimulatedRouterDirectory> simulators,
        IEnumerable<IRouterMemberHealth> health,
        TimeProvider timeProvider,
        FleetTelemetry telemetry)
    {
        _simulators = simulators.FirstOrDefault();
        _health = health.FirstOrDefault();
        _streams = new StreamSlots(timeProvider, telemetry);
        _snapshot = Snapshot.Build(options.CurrentValue);
        _subscription = options.OnChange(o => _snapshot = Snapshot.Build(o));
    }

    public IReadOnlyList<CatalogModel> Models => _snapshot.OrderedModels;

    public bool TryGetModel(string alias, out CatalogModel model)
        => _snapshot.Models.TryGetValue(alias, out model!);

    public bool TrySelect(string pool, out RouterTarget target) => TrySelect(pool, null, out target);

    public bool TrySelectOther(string pool, RouterTarget failed, out RouterTarget target) => TrySelect(pool, failed, out target);

    private bool TrySelect(string pool, RouterTarget? excluded, out RouterTarget target)
    {
        target = null!;
        if (!_snapshot.Pools.TryGetValue(pool, out var state) || state.Members.Length == 0)
        {
            return false;
        }

        var start = (int)((uint)Interlocked.Increment(ref state.Cursor) % (uint)state.Members.Length);
        for (var i = 0; i < state.Members.Length; i++)
        {
            var member = state.Members[(start + i) % state.Members.Length];
            if (excluded is not null && member.RouterId == excluded.RouterId && member.SessionId == excluded.SessionId)
            {
                continue;
            }

            if (IsHealthy(member) && TryBuildTarget(member, state.UpstreamModel, out target))
            {
                return true;
            }
        }

        return false;
    }

    public int CountRoutableMembers(string pool)
    {
        if (!_snapshot.Pools.TryGetValue(pool, out var state))
        {
            return 0;
        }

        var count = 0;
        foreach (var member in state.Members)
        {
            if (IsRoutable(member))
            {
                count++;
            }
        }

        return count;
    }

    public int CountSimulatedRoutableMembers(string pool)
    {
        if (!_snapshot.Pools.TryGetValue(pool, out var state))
        {
            return 0;
        }

        var count = 0;
        foreach (var member in state.Members)
        {
            if (member.Router.Simulated && IsRoutable(member))
            {
                count++;
            }
        }

        return count;
    }

    public ValueTask<StreamLease> AcquireAsync(string pool, RouterTarget preferred, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(preferred);
        if (!_snapshot.Pools.TryGetValue(pool, out var state))
        {
            // The pool went away in a reload after selection: the target is still a valid place to send this one stream.
            return _streams.AcquireAsync(pool, new StreamPlan(RouterQueueMode.Blocking, 0, TimeSpan.Zero, [new StreamCandidate(SlotOf(preferred), preferred)], TimeSpan.Zero), cancellationToken);
        }

        // The selected member first, then the others in pool order after it, so selection's round robin still spreads load.
        var candidates = new List<StreamCandidate>(state.Members.Length) { new(SlotOf(preferred), preferred) };
        var at = Array.FindIndex(state.Members, m => m.RouterId == preferred.RouterId && m.SessionId == preferred.SessionId);
        for (var i = 1; i <= state.Members.Length; i++)
        {
            var member = state.Members[(at + i) % state.Members.Length]; // at = -1 (not a member): every member in order
            // Only members selection would pick too: not one held out after a 404, not a disabled one.
            if (!(member.RouterId == preferred.RouterId && member.SessionId == preferred.SessionId)
                && IsRoutable(member)
                && TryBuildTarget(member, state.UpstreamModel, out var target))
            {
                candidates.Add(new StreamCandidate(SlotOf(target), target));
            }
        }

        return _streams.AcquireAsync(pool, new StreamPlan(state.RouterQueues, state.StreamQueueLength, state.StreamQueueWait, candidates, state.TaskTimeout), cancellationToken);
    }

    public PoolStreamLoad GetLoad(string pool)
    {
        if (!_snapshot.Pools.TryGetValue(pool, out var state))
        {
            return _streams.GetLoad(pool, RouterQueueMode.Blocking, 0);
        }

        int? capacity = null;
        if (state.RouterQueues == RouterQueueMode.Blocking)
        {
            var exclusive = state.Members.Where(IsRoutable).ToList();
            // OpenAI-compatible members take no slot: with one of them the pool's stream count has no bound.
            capacity = exclusive.Any(m => m.Router.Protocol != RouterProtocol.Cortensor)
                ? null
                : exclusive.Select(m => (m.RouterId.ToUpperInvariant(), m.SessionId)).Distinct().Count();
        }

        return _streams.GetLoad(pool, state.RouterQueues, capacity);
    }

    public void Dispose() => _subscription?.Dispose();

    /// <summary>
    /// The exclusive key of a (router, session): Cortensor routers only. OpenAI-compatible upstreams keep no
    /// per-session token queue, so their streams never wait.
    /// </summary>
    private static string? SlotOf(RouterTarget target) =>
        target.Protocol == RouterProtocol.Cortensor ? $"{target.RouterId.ToUpperInvariant()}/{target.SessionId}" : null;

    // The same test TryBuildTarget applies, without building a target.
    private bool IsRoutable(Member member)
        => IsHealthy(member) && (!member.Router.Simulated || (_simulators is not null && _simulators.TryGetEndpoint(member.RouterId, out _, out _)));

    private bool IsHealthy(Member member) => _health?.IsHealthy(member.RouterId, member.SessionId) ?? true;

    private bool TryBuildTarget(Member member, string? upstreamModel, out RouterTarget target)
    {
        var baseUrl = member.Router.BaseUrl;
        var apiKey = member.Router.ApiKey;
        if (member.Router.Simulated)
        {
            if (_simulators is null || !_simulators.TryGetEndpoint(member.RouterId, out var simUrl, out var simKey))
            {
                target = null!;
                return false;
            }

            baseUrl = simUrl;
            apiKey = simKey;
        }

        target = new RouterTarget
        {
            RouterId = member.RouterId,
            BaseUrl = baseUrl!,
            ApiKey = apiKey,
            Protocol = member.Router.Protocol,
            ApiVersion = member.Router.ApiVersion,
            SessionId = member.SessionId,
            UrlForm = member.Router.UrlForm,
            UpstreamModel = upstreamModel,
        };
        return true;
    }

    private sealed record Member(string RouterId, RouterOptions Router, long? SessionId);

    private sealed class PoolState(Member[] members, PoolOptions pool)
    {
        public readonly Member[] Members = members;
        public readonly string? UpstreamModel = pool.UpstreamModel;
        public readonly RouterQueueMode RouterQueues = pool.RouterQueues;
        public readonly int StreamQueueLength = pool.StreamQueueLength;
        public readonly TimeSpan StreamQueueWait = TimeSpan.FromSeconds(pool.StreamQueueWaitSeconds);
        public readonly TimeSpan TaskTimeout = TimeSpan.FromSeconds(pool.TaskTimeoutSeconds);
        public int Cursor = -1;
    }

    private sealed record Snapshot(
        FrozenDictionary<string, CatalogModel> Models,
        IReadOnlyList<CatalogModel> OrderedModels,
        FrozenDictionary<string, PoolState> Pools)
    {
        public static Snapshot Build(FleetOptions options)
        {
            var pools = new Dictionary<string, PoolState>(StringComparer.OrdinalIgnoreCase);
            foreach (var (name, pool) in options.Pools)
            {
                if (!pool.Enabled)
                {
                    continue;
                }

                var members = pool.Members
                    .Where(m => m.Enabled && options.Routers.TryGetValue(m.Router, out var r) && r.Enabled)
                    .Select(m => new Member(m.Router, options.Routers[m.Router], m.SessionId))
                    .ToArray();
                pools[name] = new PoolState(members, pool);
            }

            var models = new Dictionary<string, CatalogModel>(StringComparer.OrdinalIgnoreCase);
            foreach (var (alias, model) in options.Models)
            {
                if (!model.Enabled || !options.Pools.TryGetValue(model.Pool, out var pool) || !pool.Enabled)
                {
                    continue;
                }

                models[alias] = new CatalogModel
                {
                    Alias = alias,
                    ContextTokens = model.ContextTokens,
                    MaxOutputTokens = model.MaxOutputTokens,
                    OwnedBy = model.OwnedBy,
                    Created = model.Created,
                    Pool = model.Pool,
                    PromptFormat = pool.PromptFormat,
                    PromptType = pool.PromptType ?? PromptBuilder.DefaultPromptType(pool.PromptFormat),
                    TaskTimeoutSeconds = pool.TaskTimeoutSeconds,
                    PrecommitTimeoutSeconds = pool.PrecommitTimeoutSeconds,
                    HttpTimeoutSlackSeconds = pool.HttpTimeoutSlackSeconds,
                    Defaults = pool.Defaults,
                };
            }

            return new Snapshot(
                models.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase),
                models.Values.OrderBy(m => m.Alias, StringComparer.Ordinal).ToArray(),
                pools.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase));
        }
    }
}
