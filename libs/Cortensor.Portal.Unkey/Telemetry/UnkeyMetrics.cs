using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Cortensor.Portal.Unkey.Telemetry;

/// <summary>
/// The Unkey provider's instruments on the meter <see cref="MeterName"/> (add it to your exporters):
/// <list type="bullet">
/// <item><c>cortensor.unkey.verifications</c> (<c>{verification}</c>), tag <c>code</c>: Unkey's outcome code
/// (<c>VALID</c>, <c>NOT_FOUND</c>, …, <c>UNKNOWN</c> for codes this version does not know), or <c>malformed</c>,
/// <c>cached</c> and <c>unavailable</c>;</item>
/// <item><c>cortensor.unkey.degraded</c> (<c>{verification}</c>): verifications made while Unkey could not be asked,
/// tag <c>result</c> <c>served_stale</c> (a recently verified key kept working) or <c>refused</c> (503), and tag
/// <c>reason</c> (<c>timeout</c>, <c>circuit_open</c>, <c>network</c>, <c>http_5xx</c>, <c>http_429</c>,
/// <c>http_4xx</c>, <c>bad_response</c>).</item>
/// </list>
/// No tag carries a key, a key id or an org id.
/// </summary>
public sealed class UnkeyMetrics : IDisposable
{
    /// <summary>Name of the meter.</summary>
    public const string MeterName = "Cortensor.Portal.Unkey";

    public const string VerificationsName = "cortensor.unkey.verifications";
    public const string DegradedName = "cortensor.unkey.degraded";

    private readonly Meter? _ownMeter;
    private readonly Counter<long> _verifications;
    private readonly Counter<long> _degraded;

    /// <param name="meterFactory">Creates the meter; without one the meter is created (and disposed) here.</param>
    public UnkeyMetrics(IMeterFactory? meterFactory = null)
    {
        var meter = meterFactory?.Create(MeterName) ?? (_ownMeter = new Meter(MeterName));
        _verifications = meter.CreateCounter<long>(
            VerificationsName,
            unit: "{verification}",
            description: "Key verifications through Unkey, by outcome code.");
        _degraded = meter.CreateCounter<long>(
            DegradedName,
            unit: "{verification}",
            description: "Verifications while Unkey was unreachable, slow or failing: served from a recent verification (served_stale) or refused with 503 (refused).");
    }

    internal void Verification(string code)
    {
        if (_verifications.Enabled)
        {
            _verifications.Add(1, new TagList { { "code", code } });
        }
    }

    internal void Degraded(bool servedStale, string reason)
    {
        if (_degraded.Enabled)
        {
            _degraded.Add(1, new TagList { { "result", servedStale ? "served_stale" : "refused" }, { "reason", reason } });
        }
    }

    public void Dispose() => _ownMeter?.Dispose();
}
