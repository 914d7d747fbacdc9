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
/// <c>http_4xx</c>, <c>bad_response</c>, <c>verify_permission</c> when Unkey answered NOT_FOUND for a key
/// <c>keys.getKey</c> shows is live, <c>root_key_permissions</c> when the root key may not even read it);</item>
/// <item><c>cortensor.unkey.not_found</c> (<c>{verification}</c>): Unkey's NOT_FOUND answers, tag <c>known_key</c>
/// (<c>true</c> when the key had verified as valid before: a revocation made in Unkey, or a root key that lost
/// <c>verify_key</c>, which makes Unkey answer NOT_FOUND for every key). Alert on its rate; the provider also logs a
/// warning when more than <c>NotFoundSpikeThreshold</c> arrive within <c>NotFoundSpikeWindow</c>.</item>
/// </list>
/// No tag carries a key, a key id or an org id.
/// </summary>
public sealed class UnkeyMetrics : IDisposable
{
    /// <summary>Name of the meter.</summary>
    public const string MeterName = "Cortensor.Portal.Unkey";

    public const string VerificationsName = "cortensor.unkey.verifications";
    public const string DegradedName = "cortensor.unkey.degraded";
    public const string NotFoundName = "cortensor.unkey.not_found";

    private readonly Meter? _ownMeter;
    private readonly Counter<long> _verifications;
    private readonly Counter<long> _degraded;
    private readonly Counter<long> _notFound;

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
        _notFound = meter.CreateCounter<long>(
            NotFoundName,
            unit: "{verification}",
            description: "NOT_FOUND answers from Unkey; a spike can mean the root key lost its verify_key permission.");
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

    internal void NotFound(bool knownKey)
    {
        if (_notFound.Enabled)
        {
            _notFound.Add(1, new TagList { { "known_key", knownKey ? "true" : "false" } });
        }
    }

    public void Dispose() => _ownMeter?.Dispose();
}
