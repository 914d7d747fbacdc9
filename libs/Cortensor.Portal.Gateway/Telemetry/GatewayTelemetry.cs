using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Cortensor.Portal.Gateway.Telemetry;

/// <summary>The gateway's one <see cref="Meter"/> and <see cref="ActivitySource"/>. Add <see cref="Name"/> to your exporters.</summary>
public sealed class GatewayTelemetry : IDisposable
{
    public const string Name = "Cortensor.Portal.Gateway";

    public static readonly ActivitySource ActivitySource = new(Name);

    private readonly Meter _meter;
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _tokens;
    private readonly Counter<long> _speculative;
    private readonly Counter<long> _authenticationFailures;

    public GatewayTelemetry(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(Name);
        _requests = _meter.CreateCounter<long>("cortensor.gateway.requests", "{request}", "Inference requests handled, by model and status code.");
        _duration = _meter.CreateHistogram<double>("cortensor.gateway.request.duration", "s", "Time from request to the last response byte.");
        _tokens = _meter.CreateCounter<long>("gen_ai.client.token.usage", "{token}", "Tokens used, by model and token type (input/output).");
        _speculative = _meter.CreateCounter<long>(
            "cortensor.gateway.admission.speculative",
            "{request}",
            "Router calls started while the shared rate-limit decision was in flight, by outcome: admitted, or discarded (refused, limiter failed, client left).");
        _authenticationFailures = _meter.CreateCounter<long>(
            "cortensor.gateway.authentication.failures",
            "{request}",
            "Requests that failed authentication, by reason (address_rate_limited: refused before verification). No address tag: its cardinality is unbounded.");
    }

    public void RecordRequest(string? model, int statusCode, TimeSpan duration)
    {
        if (!_requests.Enabled && !_duration.Enabled)
        {
            return;
        }

        var tags = new TagList
        {
            { "gen_ai.request.model", model ?? "" },
            { "http.response.status_code", statusCode },
        };
        _requests.Add(1, tags);
        _duration.Record(duration.TotalSeconds, tags);
    }

    public void RecordTokens(string model, int input, int output)
    {
        if (!_tokens.Enabled)
        {
            return;
        }

        _tokens.Add(input, new TagList { { "gen_ai.request.model", model }, { "gen_ai.token.type", "input" } });
        _tokens.Add(output, new TagList { { "gen_ai.request.model", model }, { "gen_ai.token.type", "output" } });
    }

    public void RecordSpeculativeAdmission(bool admitted)
    {
        if (_speculative.Enabled)
        {
            _speculative.Add(1, new KeyValuePair<string, object?>("cortensor.admission.outcome", admitted ? "admitted" : "discarded"));
        }
    }

    public void RecordAuthenticationFailure(string reason)
    {
        if (_authenticationFailures.Enabled)
        {
            _authenticationFailures.Add(1, new KeyValuePair<string, object?>("reason", reason));
        }
    }

    public void Dispose() => _meter.Dispose();
}
