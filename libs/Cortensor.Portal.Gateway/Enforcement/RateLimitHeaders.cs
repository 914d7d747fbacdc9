using System.Globalization;
using System.Text;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.AspNetCore.Http;

namespace Cortensor.Portal.Gateway.Enforcement;

/// <summary>
/// Rate limit headers on every response that was counted or limited:
/// <c>RateLimit-Policy</c> and <c>RateLimit</c> as in draft-ietf-httpapi-ratelimit-headers-10 (one item per
/// policy: <c>q</c> quota, <c>w</c> window seconds, <c>qu</c> unit; <c>r</c> remaining, <c>t</c> seconds to full
/// reset), plus OpenAI's <c>x-ratelimit-*</c> headers (the tightest request and token policy) that OpenAI tools read.
/// </summary>
internal static class RateLimitHeaders
{
    public const string Policy = "RateLimit-Policy";
    public const string State = "RateLimit";

    /// <summary>Writes the headers of this request's decision, if it has one and the response has not started.</summary>
    public static void Apply(HttpContext context)
    {
        if (context.Response.HasStarted || GatewayRequestState.Of(context).RateLimit is not { Counters.Count: > 0 } decision)
        {
            return;
        }

        var headers = context.Response.Headers;
        headers[Policy] = FormatPolicy(decision.Counters);
        headers[State] = FormatState(decision.Counters);
        WriteOpenAIHeaders(headers, decision.Counters, RateLimitClass.Requests, "requests");
        WriteOpenAIHeaders(headers, decision.Counters, RateLimitClass.Tokens, "tokens");
    }

    public static string FormatPolicy(IReadOnlyList<RateLimitCounter> counters)
    {
        var text = new StringBuilder();
        foreach (var counter in counters)
        {
            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append('"').Append(counter.Policy).Append("\";q=").Append(counter.Rule.Quota.ToString(CultureInfo.InvariantCulture));
            switch (counter.Rule.Class)
            {
                case RateLimitClass.Tokens:
                    // Not a registered unit of the draft; named so a client can tell token policies apart.
                    text.Append(";qu=\"tokens\"");
                    break;
                case RateLimitClass.Concurrency:
                    text.Append(";qu=\"concurrent-requests\"");
                    continue; // no window
            }

            text.Append(";w=").Append(Seconds(counter.Rule.Window).ToString(CultureInfo.InvariantCulture));
        }

        return text.ToString();
    }

    public static string FormatState(IReadOnlyList<RateLimitCounter> counters)
    {
        var text = new StringBuilder();
        foreach (var counter in counters)
        {
            if (text.Length > 0)
            {
                text.Append(", ");
            }

            text.Append('"').Append(counter.Policy).Append("\";r=").Append(Math.Max(0, counter.Remaining).ToString(CultureInfo.InvariantCulture));
            if (counter.Rule.Class != RateLimitClass.Concurrency)
            {
                text.Append(";t=").Append(Seconds(counter.Reset).ToString(CultureInfo.InvariantCulture));
            }
        }

        return text.ToString();
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

    private static void WriteOpenAIHeaders(IHeaderDictionary headers, IReadOnlyList<RateLimitCounter> counters, RateLimitClass rateClass, string suffix)
    {
        RateLimitCounter? tightest = null;
        foreach (var counter in counters)
        {
            if (counter.Rule.Class == rateClass && (tightest is null || counter.Remaining < tightest.Remaining))
            {
                tightest = counter;
            }
        }

        if (tightest is null)
        {
            return;
        }

        headers["x-ratelimit-limit-" + suffix] = tightest.Rule.Quota.ToString(CultureInfo.InvariantCulture);
        headers["x-ratelimit-remaining-" + suffix] = Math.Max(0, tightest.Remaining).ToString(CultureInfo.InvariantCulture);
        headers["x-ratelimit-reset-" + suffix] = GoDuration(tightest.Reset);
    }

    /// <summary>Whole seconds, rounded up (a client waiting this long is never early).</summary>
    private static long Seconds(TimeSpan value) => value <= TimeSpan.Zero ? 0 : (long)Math.Ceiling(value.TotalSeconds);
}
