using System.Collections.Concurrent;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Gateway.Tests.Support;

/// <summary>
/// Wraps the <see cref="IRateLimiter"/> the gateway registered and keeps every decision it returned, so a test can
/// compare the rate limit headers with what the limiter itself said (before the header writer's clamp).
/// </summary>
/// <param name="inner">The limiter the gateway would have used.</param>
/// <param name="report">
/// Changes each counter as reported to the gateway (the recorded decision is the changed one); null reports the
/// inner limiter's counters unchanged. Lets a test play a limiter that over-reports.
/// </param>
internal sealed class RecordingRateLimiter(IRateLimiter inner, Func<RateLimitCounter, RateLimitCounter>? report = null) : IRateLimiter
{
    private readonly ConcurrentQueue<RateLimitDecision> _decisions = new();

    /// <summary>
    /// Replaces the last <see cref="IRateLimiter"/> registration with a <see cref="RecordingRateLimiter"/> over the
    /// limiter that registration creates, so the decorated limiter is the real one, however it was registered.
    /// </summary>
    public static void Decorate(IServiceCollection services, Func<RateLimitCounter, RateLimitCounter>? report = null)
    {
        var registered = services.Last(static d => d.ServiceType == typeof(IRateLimiter));
        services.Remove(registered);
        services.AddSingleton(sp => new RecordingRateLimiter(Create(sp, registered), report));
        services.AddSingleton<IRateLimiter>(static sp => sp.GetRequiredService<RecordingRateLimiter>());
    }

    /// <summary>Returns the decisions made since the last call, oldest first, and forgets them.</summary>
    public IReadOnlyList<RateLimitDecision> TakeDecisions()
    {
        var taken = new List<RateLimitDecision>();
        while (_decisions.TryDequeue(out var decision))
        {
            taken.Add(decision);
        }

        return taken;
    }

    public async ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
    {
        var decision = await inner.AcquireAsync(request, cancellationToken);
        if (report is not null)
        {
            decision = decision with
            {
                Counters = decision.Counters.Select(report).ToList(),
                LimitedBy = decision.LimitedBy is null ? null : report(decision.LimitedBy),
            };
        }

        _decisions.Enqueue(decision);
        return decision;
    }

    public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default) =>
        inner.ReleaseAsync(lease, actualTokens, cancellationToken);

    private static IRateLimiter Create(IServiceProvider services, ServiceDescriptor registered) =>
        registered.ImplementationInstance as IRateLimiter
        ?? registered.ImplementationFactory?.Invoke(services) as IRateLimiter
        ?? (IRateLimiter)ActivatorUtilities.CreateInstance(services, registered.ImplementationType!);
}
