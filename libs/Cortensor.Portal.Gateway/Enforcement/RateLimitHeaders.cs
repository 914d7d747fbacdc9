using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.AspNetCore.Http;

namespace Cortensor.Portal.Gateway.Enforcement;

/// <summary>
/// Rate limit headers on every response that was counted or limited:
/// <c>RateLimit-Policy</c> and <c>RateLimit</c> as in draft-ietf-httpapi-ratelimit-headers-10 (one item per
/// policy: <c>q</c> quota, <c>w</c> window seconds, <c>qu</c> unit; <c>r</c> remaining, <c>t</c> seconds to full
/// reset), plus OpenAI's <c>x-ratelimit-*</c> headers (the tightest request and token policy) that OpenAI tools read.
/// </summary>
/// <remarks>
/// Remaining is what the client may still send now under the policy named beside it, so it is written within
/// 0..quota (<see cref="Remaining(long, long)"/>). The gateway's limiters already keep it there (exact GCRA); the clamp
/// holds the headers to their own policy for any other <see cref="IRateLimiter"/> and for provider-checked limits.
/// </remarks>
internal static class RateLimitHeaders
{
    public const string Policy = "RateLimit-Policy";
    public const string State = "RateLimit";

    private const int MaxCachedPolicyTexts = 256;

    private static readonly ConcurrentDictionary<PolicyShape, string> PolicyTexts = new();

    /// <summary>
    /// Writes the headers of this request's decision, if it has one and the response has not started. Rate limits the
    /// key provider checked (<see cref="GatewayRequestState.ProviderRateLimits"/>, for example Unkey's) follow the
    /// gateway's own policies in <c>RateLimit-Policy</c> and <c>RateLimit</c>; the <c>x-ratelimit-*</c> headers come
    /// from the gateway's own limits only.
    /// </summary>
    public static void Apply(HttpContext context)
    {
        if (context.Response.HasStarted)
        {
            return;
        }

        var state = GatewayRequestState.Of(context);
        var counters = state.RateLimit?.Counters ?? [];
        var provided = state.ProviderRateLimits ?? [];
        if (counters.Count == 0 && provided.Count == 0)
        {
            return;
        }

        var headers = context.Response.Headers;
        headers[Policy] = Join(counters.Count > 0 ? PolicyText(counters) : "", FormatProviderPolicy(provided));
        headers[State] = Join(counters.Count > 0 ? FormatState(counters) : "", FormatProviderState(provided));
        WriteOpenAIHeaders(headers, counters, RateLimitClass.Requests, OpenAIHeaderNames.Requests);
        WriteOpenAIHeaders(headers, counters, RateLimitClass.Tokens, OpenAIHeaderNames.Tokens);
    }

    /// <summary><c>RateLimit-Policy</c> items of provider-checked limits: <c>"unkey-requests";q=100;w=60</c>.</summary>
    public static string FormatProviderPolicy(IReadOnlyList<ApiKeyRateLimit> limits)
    {
        var text = new StringBuilder();
        foreach (var limit in limits)
        {
            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append('"').Append(limit.Name).Append("\";q=").Append(limit.Limit.ToString(CultureInfo.InvariantCulture))
                .Append(";w=").Append(Seconds(limit.Window).ToString(CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }

    /// <summary><c>RateLimit</c> items of provider-checked limits: <c>"unkey-requests";r=99;t=60</c>.</summary>
    public static string FormatProviderState(IReadOnlyList<ApiKeyRateLimit> limits)
    {
        var text = new StringBuilder();
        foreach (var limit in limits)
        {
            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append('"').Append(limit.Name).Append("\";r=").Append(Remaining(limit.Remaining, limit.Limit).ToString(CultureInfo.InvariantCulture))
                .Append(";t=").Append(Seconds(limit.Reset).ToString(CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }

    private static string Join(string own, string provided)
        => own.Length == 0 ? provided : provided.Length == 0 ? own : own + ", " + provided;

    /// <summary>
    /// <see cref="FormatPolicy"/>, built once per set of policies: the text depends only on each counter's policy name
    /// and rule, and a deployment has a handful of plans and overrides (the planner shares their rules), so every
    /// counted response would otherwise format the same string again.
    /// </summary>
    public static string PolicyText(IReadOnlyList<RateLimitCounter> counters)
    {
        var shape = new PolicyShape(counters);
        if (PolicyTexts.TryGetValue(shape, out var text))
        {
            return text;
        }

        text = FormatPolicy(counters);
        if (PolicyTexts.Count < MaxCachedPolicyTexts)
        {
            // The key keeps this decision's counters, of which only policy names and rules are compared.
            PolicyTexts.TryAdd(shape, text);
        }

        return text;
    }

    public static string FormatPolicy(IReadOnlyList<RateLimitCounter> counters)
    {
        // Written on every counted response: one string, built in a stack buffer (no StringBuilder and its chunks).
        var text = new DefaultInterpolatedStringHandler(0, 0, CultureInfo.InvariantCulture, stackalloc char[512]);
        for (var i = 0; i < counters.Count; i++)
        {
            var counter = counters[i];
            BeginItem(ref text, i, counter.Policy);
            text.AppendLiteral(";q=");
            text.AppendFormatted(counter.Rule.Quota);
            switch (counter.Rule.Class)
            {
                case RateLimitClass.Tokens:
                    // Not a registered unit of the draft; named so a client can tell token policies apart.
                    text.AppendLiteral(";qu=\"tokens\"");
                    break;
                case RateLimitClass.Concurrency:
                    text.AppendLiteral(";qu=\"concurrent-requests\"");
                    continue; // no window
            }

            text.AppendLiteral(";w=");
            text.AppendFormatted(Seconds(counter.Rule.Window));
        }

        return text.ToStringAndClear();
    }

    public static string FormatState(IReadOnlyList<RateLimitCounter> counters)
    {
        var text = new DefaultInterpolatedStringHandler(0, 0, CultureInfo.InvariantCulture, stackalloc char[512]);
        for (var i = 0; i < counters.Count; i++)
        {
            var counter = counters[i];
            BeginItem(ref text, i, counter.Policy);
            text.AppendLiteral(";r=");
            text.AppendFormatted(Remaining(counter));
            if (counter.Rule.Class != RateLimitClass.Concurrency)
            {
                text.AppendLiteral(";t=");
                text.AppendFormatted(Seconds(counter.Reset));
            }
        }

        return text.ToStringAndClear();
    }

    /// <summary>Starts item <paramref name="index"/> of a structured-field list: the separator, then the quoted policy name.</summary>
    private static void BeginItem(ref DefaultInterpolatedStringHandler text, int index, string policy)
    {
        if (index > 0)
        {
            text.AppendLiteral(", ");
        }

        text.AppendLiteral("\"");
        text.AppendFormatted(policy);
        text.AppendLiteral("\"");
    }

    /// <summary>Go-style duration, as OpenAI sends it: <c>0s</c>, <c>12ms</c>, <c>1.5s</c>, <c>6m0s</c>, <c>1h2m3s</c>.</summary>
    public static string GoDuration(TimeSpan value)
    {
        if (value <= TimeSpan.Zero)
        {
            return "0s";
        }

        if (value < TimeSpan.FromSeconds(1))
        {
            return Math.Round(value.TotalMilliseconds, 3).ToString("0.###", CultureInfo.InvariantCulture) + "ms";
        }

        var text = new StringBuilder();
        var hours = (long)value.TotalHours;
        if (hours > 0)
        {
            text.Append(hours.ToString(CultureInfo.InvariantCulture)).Append('h');
        }

        if (hours > 0 || value.Minutes > 0)
        {
            text.Append(value.Minutes.ToString(CultureInfo.InvariantCulture)).Append('m');
        }

        var seconds = value.Seconds + (value.Milliseconds / 1000.0);
        text.Append(seconds.ToString("0.###", CultureInfo.InvariantCulture)).Append('s');
        return text.ToString();
    }

    private static void WriteOpenAIHeaders(IHeaderDictionary headers, IReadOnlyList<RateLimitCounter> counters, RateLimitClass rateClass, OpenAIHeaderNames names)
    {
        RateLimitCounter? tightest = null;
        for (var i = 0; i < counters.Count; i++)
        {
            var counter = counters[i];
            if (counter.Rule.Class == rateClass && (tightest is null || Remaining(counter) < Remaining(tightest)))
            {
                tightest = counter;
            }
        }

        if (tightest is null)
        {
            return;
        }

        headers[names.Limit] = tightest.Rule.Quota.ToString(CultureInfo.InvariantCulture);
        headers[names.Remaining] = Remaining(tightest).ToString(CultureInfo.InvariantCulture);
        headers[names.Reset] = GoDuration(tightest.Reset);
    }

    /// <summary>OpenAI's header names for one class of limit, built once.</summary>
    private sealed record OpenAIHeaderNames(string Limit, string Remaining, string Reset)
    {
        public static readonly OpenAIHeaderNames Requests = new("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests");

        public static readonly OpenAIHeaderNames Tokens = new("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens");
    }

    /// <summary>Counters compared by what <c>RateLimit-Policy</c> shows of them: policy name and rule, in order.</summary>
    private readonly struct PolicyShape(IReadOnlyList<RateLimitCounter> counters) : IEquatable<PolicyShape>
    {
        private readonly IReadOnlyList<RateLimitCounter> _counters = counters;

        public bool Equals(PolicyShape other)
        {
            if (_counters.Count != other._counters.Count)
            {
                return false;
            }

            for (var i = 0; i < _counters.Count; i++)
            {
                var a = _counters[i];
                var b = other._counters[i];
                if (!string.Equals(a.Policy, b.Policy, StringComparison.Ordinal) || !a.Rule.Equals(b.Rule))
                {
                    return false;
                }
            }

            return true;
        }

        public override bool Equals(object? obj) => obj is PolicyShape other && Equals(other);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            for (var i = 0; i < _counters.Count; i++)
            {
                hash.Add(_counters[i].Policy, StringComparer.Ordinal);
                hash.Add(_counters[i].Rule);
            }

            return hash.ToHashCode();
        }
    }

    /// <summary>A remaining count as written: never below 0 nor above the quota of the policy it is shown with.</summary>
    public static long Remaining(long remaining, long quota) => Math.Clamp(remaining, 0, Math.Max(0, quota));

    private static long Remaining(RateLimitCounter counter) => Remaining(counter.Remaining, counter.Rule.Quota);

    /// <summary>Whole seconds, rounded up (a client waiting this long is never early).</summary>
    private static long Seconds(TimeSpan value) => value <= TimeSpan.Zero ? 0 : (long)Math.Ceiling(value.TotalSeconds);
}
