using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Tests.Contract;
using Cortensor.Portal.Testing.Unkey;
using Cortensor.Portal.Unkey.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Unkey.Tests.Contract;

/// <summary>The provider contract for the Unkey provider against the stateful Unkey stub (sharing the fake clock).</summary>
public sealed class UnkeyApiKeyProviderContractTests : ApiKeyProviderContractTests
{
    private UnkeyStub? _stub;
    private UnkeyHarness? _harness;

    /// <summary>Every HTTP call that reached the stub.</summary>
    protected override int? BackendCalls => _stub?.Requests;

    protected override Task<IApiKeyProvider> CreateProviderAsync(FakeTimeProvider time)
    {
        _stub = new UnkeyStub(time);
        _harness = new UnkeyHarness(_stub.Url, time);
        return Task.FromResult<IApiKeyProvider>(_harness.Provider);
    }

    protected override string NewUnissuedKey(ApiKeyEnvironment environment)
        => (environment == ApiKeyEnvironment.Live ? "pk_live_" : "pk_test_") + UnkeyStub.RandomBase58(32);

    protected override Task DisposeProviderAsync()
    {
        _harness?.Dispose();
        _stub?.Dispose();
        return Task.CompletedTask;
    }
}
