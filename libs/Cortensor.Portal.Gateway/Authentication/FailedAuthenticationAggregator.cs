namespace Cortensor.Portal.Gateway.Authentication;

/// <summary>One aggregate of an interval: <see cref="Count"/> requests from <see cref="Address"/> (null: addresses past the cap) that failed for <see cref="Reason"/>.</summary>
internal readonly record struct FailedAuthenticationCount(string? Address, string Reason, long Count);

/// <summary>
/// Counts failed authentications per (client address, reason) between two reports, instead of one usage row each.
/// Memory is bounded: at most <c>maxTrackedAddresses</c> pairs are itemized per interval; failures of further pairs
/// are counted per reason only (the reasons are a short fixed list).
/// </summary>
internal sealed class FailedAuthenticationAggregator
{
    private readonly Lock _gate = new();
    private Dictionary<(string Address, string Reason), long> _counts = [];
    private Dictionary<string, long> _untracked = new(StringComparer.Ordinal);

    /// <summary>Counts one failure; <paramref name="maxTrackedAddresses"/> caps the pairs itemized in this interval.</summary>
    public void Record(string? address, string reason, int maxTrackedAddresses)
    {
        var key = (address ?? ClientAddress.Unknown, reason);
        lock (_gate)
        {
            if (_counts.TryGetValue(key, out var count))
            {
                _counts[key] = count + 1;
            }
            else if (_counts.Count < maxTrackedAddresses)
            {
                _counts[key] = 1;
            }
            else
            {
                _untracked[reason] = _untracked.GetValueOrDefault(reason) + 1;
            }
        }
    }

    /// <summary>Pairs itemized in the current interval.</summary>
    public int TrackedCount
    {
        get
        {
            lock (_gate)
            {
                return _counts.Count;
            }
        }
    }

    /// <summary>Returns the interval's counts (itemized first, then the untracked ones per reason) and starts a new interval.</summary>
    public IReadOnlyList<FailedAuthenticationCount> Drain()
    {
        Dictionary<(string Address, string Reason), long> counts;
        Dictionary<string, long> untracked;
        lock (_gate)
        {
            if (_counts.Count == 0 && _untracked.Count == 0)
            {
                return [];
            }

            (counts, _counts) = (_counts, []);
            (untracked, _untracked) = (_untracked, new(StringComparer.Ordinal));
        }

        var result = new List<FailedAuthenticationCount>(counts.Count + untracked.Count);
        foreach (var ((address, reason), count) in counts)
        {
            result.Add(new FailedAuthenticationCount(address, reason, count));
        }

        foreach (var (reason, count) in untracked)
        {
            result.Add(new FailedAuthenticationCount(null, reason, count));
        }

        return result;
    }
}
