using System.Net;
using Cortensor.Portal.Unkey.Configuration;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.Timeout;

namespace Cortensor.Portal.Unkey.Client;

/// <summary>
/// The <c>cortensor-unkey</c> resilience pipeline: total timeout → retry → circuit breaker → attempt timeout.
/// Retries follow each request's <see cref="UnkeyRetryMode"/>, so nothing that spends (credits, rate limits) or
/// changes a key is sent twice.
/// </summary>
internal static class UnkeyResilience
{
    public const string PipelineName = "cortensor-unkey";

    public static void Configure(ResiliencePipelineBuilder<HttpResponseMessage> builder, UnkeyOptions options)
    {
        builder.AddTimeout(new HttpTimeoutStrategyOptions { Name = "total-timeout", Timeout = options.TotalTimeout });
        if (options.MaxRetryAttempts > 0)
        {
            builder.AddRetry(new HttpRetryStrategyOptions
            {
                Name = "retry",
                MaxRetryAttempts = options.MaxRetryAttempts,
                Delay = options.RetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                ShouldRetryAfterHeader = false, // a workspace 429 is not retried on the hot path
                ShouldHandle = static args => ValueTask.FromResult(ShouldRetry(args.Context.GetRequestMessage(), args.Outcome)),
            });
        }

        builder.AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
        {
            Name = "circuit-breaker",
            FailureRatio = options.CircuitBreakerFailureRatio,
            MinimumThroughput = options.CircuitBreakerMinimumThroughput,
            SamplingDuration = options.CircuitBreakerSamplingDuration,
            BreakDuration = options.CircuitBreakerBreakDuration,
            ShouldHandle = static args => ValueTask.FromResult(IsUnkeyFailure(args.Outcome)),
        });
        builder.AddTimeout(new HttpTimeoutStrategyOptions { Name = "attempt-timeout", Timeout = options.AttemptTimeout });
    }

    /// <summary>Whether a failed attempt may be sent again, given what the request is allowed (<see cref="UnkeyClient.RetryModeKey"/>).</summary>
    public static bool ShouldRetry(HttpRequestMessage? request, Outcome<HttpResponseMessage> outcome)
    {
        var mode = request is not null && request.Options.TryGetValue(UnkeyClient.RetryModeKey, out var value)
            ? value
            : UnkeyRetryMode.ConnectionFailuresOnly;
        return mode == UnkeyRetryMode.Transient ? IsUnkeyFailure(outcome) : IsConnectFailure(outcome.Exception);
    }

    /// <summary>5xx, 408, an attempt timeout or a network failure: Unkey (or the way to it) failed, not the request.</summary>
    public static bool IsUnkeyFailure(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Exception: HttpRequestException or TimeoutRejectedException } => true,
        { Result: { } response } => (int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.RequestTimeout,
        _ => false,
    };

    /// <summary>The connection could not be made, so the request never reached Unkey: safe to send again whatever it does.</summary>
    public static bool IsConnectFailure(Exception? exception)
        => exception is HttpRequestException
        {
            HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError or HttpRequestError.ProxyTunnelError,
        };
}
