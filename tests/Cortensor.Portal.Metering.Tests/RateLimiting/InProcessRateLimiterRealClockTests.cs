using Cortensor.Portal.Metering.RateLimiting;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

/// <summary>
/// The contract suite the way a shared store runs it: real clock, real waits, tolerances, and two limiter instances
/// over one state. Keeps the real-clock paths of the suite honest without a Redis server.
/// </summary>
public sealed class InProcessRateLimiterRealClockTests : RateLimiterContractTests
{
    private InProcessRateLimiter? _shared;

    protected override bool SharesStateAcrossInstances => true;

    protected override IRateLimiter CreateLimiter(RateLimitingOptions options)
    {
        _shared ??= new InProcessRateLimiter(options, TimeProvider.System);
        return new Replica(_shared);
    }

    /// <summary>A second handle on the same state, as a second replica on the same store would be.</summary>
    private sealed class Replica(IRateLimiter store) : IRateLimiter
    {
        public ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default) =>
            store.AcquireAsync(request, cancellationToken);

        public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default) =>
            store.ReleaseAsync(lease, actualTokens, cancellationToken);
    }
}
