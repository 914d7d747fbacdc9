using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Metering.Tests.RateLimiting;
using Cortensor.Portal.Redis.RateLimiting;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Redis.Tests.RateLimiting;

/// <summary>
/// The shared accuracy suite against Redis on a real clock. Every limiter a test creates has its own multiplexer, so
/// the "two replicas" tests prove that the state lives in Redis, not in the limiter.
/// </summary>
public sealed class RedisRateLimiterContractTests : RateLimiterContractTests, IDisposable
{
    private readonly RedisTestScope _scope = new();

    protected override bool SharesStateAcrossInstances => true;

    protected override IRateLimiter CreateLimiter(RateLimitingOptions options)
        => new RedisRateLimiter(
            _scope.Connect(),
            _scope.OptionsWrapper,
            new StaticOptionsMonitor<RateLimitingOptions>(options),
            NullLogger<RedisRateLimiter>.Instance);

    public void Dispose() => _scope.Dispose();
}

/// <summary>An <see cref="IOptionsMonitor{TOptions}"/> over one fixed value.</summary>
internal sealed class StaticOptionsMonitor<T>(T value) : IOptionsMonitor<T>
{
    public T CurrentValue => value;

    public T Get(string? name) => value;

    public IDisposable? OnChange(Action<T, string?> listener) => null;
}
