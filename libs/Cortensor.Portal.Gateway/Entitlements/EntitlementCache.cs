using System.Collections.Concurrent;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Changes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Entitlements;

/// <summary>What a key may do: its org's plan and every model access policy that applies to it.</summary>
public sealed record KeyEntitlements(string? PlanId, IReadOnlyList<ModelAccessPolicy> Policies)
{
    public static KeyEntitlements None { get; } = new(null, []);

    /// <summary>Disabled for everyone by a global deny: answered as if the model did not exist.</summary>
    public bool IsDisabledGlobally(string modelAlias) => ModelAccessDecision.IsDisabledGlobally(Policies, modelAlias);

    public bool IsAllowed(string modelAlias) => ModelAccessDecision.IsAllowed(Policies, modelAlias);
}

/// <summary>Settings of the entitlement cache (section <c>Cortensor:Gateway:Entitlements</c>).</summary>
public sealed class EntitlementCacheOptions
{
    /// <summary>
    /// Backstop refresh interval. Changes made through <see cref="ModelAccessAdministration"/> are pushed to every
    /// replica at once; this bounds staleness for changes made straight in the database. <value>The default value is 30 s.</value>
    /// </summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(30);
}

/// <summary>
/// Keeps plan and policy look-ups off the hot path: one load per key per refresh interval (two store round
/// trips), dropped at once when a change notice for the key, its org, its plan or a global policy arrives.
/// While the store is unreachable the last known answer is served; a key never seen gets 503.
/// </summary>
internal sealed partial class EntitlementCache : IDisposable
{
    private readonly IModelAccessPolicyStore? _policies;
    private readonly IPlanStore? _plans;
    private readonly TimeProvider _time;
    private readonly EntitlementCacheOptions _options;
    private readonly ILogger<EntitlementCache> _logger;
    private readonly IDisposable _subscription;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Task<KeyEntitlements>> _loading = new(StringComparer.Ordinal);
    private long _generation;
    private long _nextSweepUtcTicks;

    public EntitlementCache(
        IEnumerable<IModelAccessPolicyStore> policies,
        IEnumerable<IPlanStore> plans,
        IHotPathChangeFeed changes,
        TimeProvider time,
        IOptions<EntitlementCacheOptions> options,
        ILogger<EntitlementCache> logger)
    {
        _policies = policies.LastOrDefault();
        _plans = plans.LastOrDefault();
        _time = time;
        _options = options.Value;
        _logger = logger;
        _subscription = changes.Subscribe(OnChange);
        _nextSweepUtcTicks = (time.GetUtcNow() + _options.RefreshInterval).UtcTicks;
    }

    /// <summary>
    /// An entry not read for this many refresh intervals (5 min by default) is dropped by the sweep that runs once per
    /// interval, so the table holds the keys in use rather than every key ever seen. A key in use keeps its entry
    /// through a store outage: each read past its refresh time pushes that time forward.
    /// </summary>
    internal const int IdleRefreshIntervals = 10;

    /// <summary>Entries held (tests, diagnostics).</summary>
    public int Count => _entries.Count;

    /// <summary>Loads in progress (tests, diagnostics).</summary>
    internal int PendingLoads => _loading.Count;

    public ValueTask<KeyEntitlements> GetAsync(ApiKeyPrincipal principal, CancellationToken cancellationToken)
    {
        if (_policies is null)
        {
            // No durable store: only the key's own allow-list applies, and the plan its provider reported (Unkey meta).
            return ValueTask.FromResult(principal.PlanId is null ? KeyEntitlements.None : new KeyEntitlements(principal.PlanId, []));
        }

        var now = _time.GetUtcNow();
        if (_entries.TryGetValue(principal.KeyId, out var entry) && entry.RefreshAt > now)
        {
            return ValueTask.FromResult(entry.Value);
        }

        return new ValueTask<KeyEntitlements>(LoadOnceAsync(principal, entry, cancellationToken));
    }

    public void Dispose() => _subscription.Dispose();

    private async Task<KeyEntitlements> LoadOnceAsync(ApiKeyPrincipal principal, Entry? stale, CancellationToken cancellationToken)
    {
        // Concurrent misses for one key share one load. It leaves the table when it ends, even when every caller
        // stopped waiting (a client that went away), so a finished load is never handed out again later.
        var load = _loading.GetOrAdd(principal.KeyId, _ => LoadAsync(principal, stale));
        _ = load.ContinueWith(
            (finished, keyId) => _loading.TryRemove(new KeyValuePair<string, Task<KeyEntitlements>>((string)keyId!, finished)),
            principal.KeyId,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return await load.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<KeyEntitlements> LoadAsync(ApiKeyPrincipal principal, Entry? stale)
    {
        var generation = Interlocked.Read(ref _generation);
        KeyEntitlements value;
        try
        {
            var now = _time.GetUtcNow();
            var subscription = _plans is null ? null : await _plans.GetActiveSubscriptionAsync(principal.OrgId, now).ConfigureAwait(false);
            // The org's active subscription decides the plan; a provider-reported plan (Unkey meta.plan) is the fallback.
            var planId = subscription?.PlanId ?? principal.PlanId;
            var policies = await _policies!.ListApplicableAsync(planId, principal.OrgId, principal.KeyId).ConfigureAwait(false);
            value = new KeyEntitlements(planId, policies);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            if (stale is null)
            {
                Log.LoadFailedNoCopy(_logger, principal.KeyId, ex);
                throw new EntitlementsUnavailableException(ex);
            }

            Log.LoadFailedServingStale(_logger, principal.KeyId, ex);
            _entries[principal.KeyId] = stale with { RefreshAt = _time.GetUtcNow() + TimeSpan.FromSeconds(1) };
            return stale.Value;
        }

        // A change notice that arrived while loading may have made this answer stale: use it, do not keep it.
        if (Interlocked.Read(ref _generation) == generation)
        {
            var now = _time.GetUtcNow();
            _entries[principal.KeyId] = new Entry(principal.OrgId, value, now + _options.RefreshInterval);
            SweepIfDue(now);
        }

        return value;
    }

    private void OnChange(HotPathChange change)
    {
        Interlocked.Increment(ref _generation);
        var id = change.Id ?? "";
        switch (change.Kind)
        {
            case HotPathChangeKind.Key:
                _entries.TryRemove(id, out _);
                break;
            case HotPathChangeKind.Policy when id.StartsWith("key:", StringComparison.Ordinal):
                _entries.TryRemove(id[4..], out _);
                break;
            case HotPathChangeKind.Policy when id.StartsWith("org:", StringComparison.Ordinal):
                RemoveWhere(e => e.OrgId == id[4..]);
                break;
            case HotPathChangeKind.Policy when id.StartsWith("plan:", StringComparison.Ordinal):
            case HotPathChangeKind.Plan when id.StartsWith("plan:", StringComparison.Ordinal):
                RemoveWhere(e => e.Value.PlanId == id[5..]);
                break;
            case HotPathChangeKind.Plan:
                RemoveWhere(e => e.OrgId == id);
                break;
            default: // global policies, models, everything
                _entries.Clear();
                break;
        }
    }

    /// <summary>At most once per refresh interval, on one caller: drops entries idle for <see cref="IdleRefreshIntervals"/>.</summary>
    private void SweepIfDue(DateTimeOffset now)
    {
        var due = Interlocked.Read(ref _nextSweepUtcTicks);
        if (now.UtcTicks < due || Interlocked.CompareExchange(ref _nextSweepUtcTicks, (now + _options.RefreshInterval).UtcTicks, due) != due)
        {
            return;
        }

        // RefreshAt is load time + one interval; a key read since then was reloaded (or, with the store down, pushed on).
        var idleSince = now - ((IdleRefreshIntervals - 1) * _options.RefreshInterval);
        RemoveWhere(e => e.RefreshAt < idleSince);
    }

    private void RemoveWhere(Func<Entry, bool> match)
    {
        foreach (var (keyId, entry) in _entries)
        {
            if (match(entry))
            {
                _entries.TryRemove(keyId, out _);
            }
        }
    }

    private sealed record Entry(string OrgId, KeyEntitlements Value, DateTimeOffset RefreshAt);

    private static partial class Log
    {
        [LoggerMessage(EventId = 1300, Level = LogLevel.Warning, Message = "Model access policies for key {KeyId} could not be loaded; serving the last known copy")]
        public static partial void LoadFailedServingStale(ILogger logger, string keyId, Exception exception);

        [LoggerMessage(EventId = 1301, Level = LogLevel.Error, Message = "Model access policies for key {KeyId} could not be loaded and none are cached; refusing with 503")]
        public static partial void LoadFailedNoCopy(ILogger logger, string keyId, Exception exception);
    }
}

/// <summary>The policy store is unreachable and nothing is cached for the key.</summary>
internal sealed class EntitlementsUnavailableException(Exception inner) : Exception("Model access policies are unavailable.", inner);
