using System.Collections.Concurrent;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Enforcement;

/// <summary>
/// Per key: whether its last shared decision left ample room on every rule, and when. Decides whether the next
/// request's router call may start before its own decision arrives (<see cref="SpeculativeAdmissionOptions"/>).
/// It never admits anything itself: the shared limiter still decides every request.
/// </summary>
internal sealed class AdmissionHeadroom(TimeProvider time, IOptionsMonitor<CortensorGatewayOptions> options)
{
    /// <summary>How often adding a key also drops every entry older than MaxAge (keys no longer sending).</summary>
    internal static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(10);

    // One entry per key seen with ample room; removed when room runs low, when found older than MaxAge, or by the sweep,
    // so the table holds about the keys that sent within the last sweep interval, not every key ever seen.
    private readonly ConcurrentDictionary<string, Room> _rooms = new(StringComparer.Ordinal);
    private long _nextSweep = time.GetTimestamp() + Ticks(time, SweepInterval);

    /// <summary>Keys currently remembered with ample room (tests, diagnostics).</summary>
    public int Count => _rooms.Count;

    /// <summary>True when the key's last decision is recent and left room for this request plus the margin.</summary>
    public bool MaySpeculate(string keyId, int tokens)
    {
        var settings = options.CurrentValue.SpeculativeAdmission;
        if (!settings.Enabled || !_rooms.TryGetValue(keyId, out var room))
        {
            return false;
        }

        if (time.GetElapsedTime(Volatile.Read(ref room.DecidedAt)) > settings.MaxAge)
        {
            _rooms.TryRemove(new KeyValuePair<string, Room>(keyId, room)); // stale: the next decision starts afresh
            return false;
        }

        return tokens <= Volatile.Read(ref room.TokenSlack);
    }

    /// <summary>Remembers a shared decision of the key (degraded, local fallback decisions never count).</summary>
    public void Observe(string keyId, RateLimitDecision decision)
    {
        var settings = options.CurrentValue.SpeculativeAdmission;
        if (!settings.Enabled)
        {
            return;
        }

        var slack = TokenSlack(decision, settings.Headroom);
        if (slack < 0)
        {
            _rooms.TryRemove(keyId, out _);
            return;
        }

        var now = time.GetTimestamp();
        if (_rooms.TryGetValue(keyId, out var room))
        {
            // Two fields written apart: a reader may pair one decision's time with the next one's slack. Both were
            // ample decisions of this key within MaxAge, so either pairing is a fair answer.
            Volatile.Write(ref room.TokenSlack, slack);
            Volatile.Write(ref room.DecidedAt, now);
        }
        else
        {
            _rooms[keyId] = new Room { DecidedAt = now, TokenSlack = slack };
            SweepIfDue(now, settings.MaxAge);
        }
    }

    /// <summary>At most once per <see cref="SweepInterval"/>, on one caller: drops the entries too old to be used.</summary>
    private void SweepIfDue(long now, TimeSpan maxAge)
    {
        var due = Volatile.Read(ref _nextSweep);
        if (now < due || Interlocked.CompareExchange(ref _nextSweep, now + Ticks(time, SweepInterval), due) != due)
        {
            return;
        }

        foreach (var (keyId, room) in _rooms)
        {
            if (time.GetElapsedTime(Volatile.Read(ref room.DecidedAt), now) > maxAge)
            {
                _rooms.TryRemove(new KeyValuePair<string, Room>(keyId, room));
            }
        }
    }

    private static long Ticks(TimeProvider time, TimeSpan span) => (long)(span.TotalSeconds * time.TimestampFrequency);

    /// <summary>
    /// Tokens a next request may carry and still leave the margin on every token rule (long.MaxValue without token
    /// rules), or −1 when the decision was not ample: refused, degraded, or a request or concurrency rule within its margin.
    /// </summary>
    internal static long TokenSlack(RateLimitDecision decision, double headroom)
    {
        if (!decision.IsAllowed || decision.Degraded)
        {
            return -1;
        }

        var slack = long.MaxValue;
        var counters = decision.Counters;
        for (var i = 0; i < counters.Count; i++)
        {
            var counter = counters[i];
            var margin = (long)Math.Ceiling(counter.Rule.Quota * headroom);
            if (counter.Rule.Class == RateLimitClass.Tokens)
            {
                slack = Math.Min(slack, counter.Remaining - margin);
            }
            else if (counter.Remaining <= margin)
            {
                return -1; // the next request needs one unit on top of the margin
            }
        }

        return slack < 0 ? -1 : slack;
    }

    private sealed class Room
    {
        public long DecidedAt;
        public long TokenSlack;
    }
}
