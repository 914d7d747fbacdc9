namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>
/// Shared base of the account, plan, policy, audit, ledger and fleet contract suites. A concrete subclass per
/// store and suite supplies <see cref="CreateAsync"/>; each test gets a fresh, empty, migrated database and
/// disposes it at the end.
/// </summary>
/// <remarks>
/// Contract points common to every suite: timestamps come back in UTC (<see cref="DateTimeOffset.Offset"/> zero),
/// exact to the microsecond; adding a row whose id exists, or one that names a row that does not exist (an
/// unknown org, user, plan, router or pool) throws <see cref="InvalidOperationException"/> (or a subclass).
/// </remarks>
public abstract class ExtendedStoreContractTests
{
    /// <summary>A fixed instant in the middle of a month.</summary>
    protected static readonly DateTimeOffset BaseTime = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Creates the stores over a fresh, empty, migrated database.</summary>
    protected abstract Task<ExtendedStoreUnderTest> CreateAsync();

    protected static void AssertUtcInstant(DateTimeOffset expected, DateTimeOffset actual)
    {
        Assert.Equal(expected.UtcTicks, actual.UtcTicks);
        Assert.Equal(TimeSpan.Zero, actual.Offset);
    }

    protected static void AssertUtcInstant(DateTimeOffset? expected, DateTimeOffset? actual)
    {
        if (expected is null)
        {
            Assert.Null(actual);
            return;
        }

        Assert.NotNull(actual);
        AssertUtcInstant(expected.Value, actual.Value);
    }
}
