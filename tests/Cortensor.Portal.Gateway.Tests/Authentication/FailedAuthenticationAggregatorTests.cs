using Cortensor.Portal.Gateway.Authentication;

namespace Cortensor.Portal.Gateway.Tests.Authentication;

public sealed class FailedAuthenticationAggregatorTests
{
    [Fact]
    public void Record_CountsPerAddressAndReason_AndDrainStartsANewInterval()
    {
        var aggregator = new FailedAuthenticationAggregator();
        for (var i = 0; i < 3; i++)
        {
            aggregator.Record("203.0.113.7", "invalid_api_key", maxTrackedAddresses: 10);
        }

        aggregator.Record("203.0.113.7", "missing_api_key", maxTrackedAddresses: 10);
        aggregator.Record(null, "invalid_api_key", maxTrackedAddresses: 10);

        var drained = aggregator.Drain().OrderBy(c => c.Address).ThenBy(c => c.Reason).ToList();

        Assert.Equal(
            [
                new FailedAuthenticationCount("203.0.113.7", "invalid_api_key", 3),
                new FailedAuthenticationCount("203.0.113.7", "missing_api_key", 1),
                new FailedAuthenticationCount(ClientAddress.Unknown, "invalid_api_key", 1),
            ],
            drained);
        Assert.Empty(aggregator.Drain());
        Assert.Equal(0, aggregator.TrackedCount);
    }

    [Fact]
    public void Record_PastTheCap_TracksNoMorePairs_ButCountsEveryFailurePerReason()
    {
        const int cap = 100;
        var aggregator = new FailedAuthenticationAggregator();

        // 10,000 distinct addresses, two reasons: an attacker rotating addresses.
        for (var i = 0; i < 10_000; i++)
        {
            aggregator.Record($"10.{i / 256 % 256}.{i % 256}.1", i % 2 == 0 ? "invalid_api_key" : "missing_api_key", cap);
        }

        Assert.Equal(cap, aggregator.TrackedCount);
        var drained = aggregator.Drain();
        Assert.Equal(cap, drained.Count(c => c.Address is not null));
        Assert.Equal(2, drained.Count(c => c.Address is null)); // one line per reason for the rest
        Assert.Equal(10_000, drained.Sum(c => c.Count));
        Assert.Equal(5_000, drained.Where(c => c.Reason == "invalid_api_key").Sum(c => c.Count));
    }

    [Fact]
    public void Record_TrackedPairPastTheCap_KeepsCountingUnderItsAddress()
    {
        var aggregator = new FailedAuthenticationAggregator();
        aggregator.Record("198.51.100.1", "invalid_api_key", maxTrackedAddresses: 1);
        aggregator.Record("198.51.100.2", "invalid_api_key", maxTrackedAddresses: 1);
        aggregator.Record("198.51.100.1", "invalid_api_key", maxTrackedAddresses: 1);

        var drained = aggregator.Drain();

        Assert.Contains(new FailedAuthenticationCount("198.51.100.1", "invalid_api_key", 2), drained);
        Assert.Contains(new FailedAuthenticationCount(null, "invalid_api_key", 1), drained);
    }
}
