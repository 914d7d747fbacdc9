using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Stores;
using Cortensor.Portal.Keys.Tests.Contract;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Redis.Tests.Keys;

/// <summary>
/// The provider contract for one replica's full Redis key stack: in-process L1 → <c>RedisApiKeyProvider</c> (shared
/// L2 on a real Redis) → the local provider over an in-memory store.
/// </summary>
public sealed class RedisApiKeyProviderContractTests : ApiKeyProviderContractTests
{
    private RedisTestScope? _scope;
    private KeyReplica? _replica;

    /// <summary>Calls that reached the source of truth (Redis hits do not count).</summary>
    protected override int? BackendCalls => _replica?.Inner.Verifications;

    protected override async Task<IApiKeyProvider> CreateProviderAsync(FakeTimeProvider time)
    {
        _scope = new RedisTestScope();
        _replica = new KeyReplica(_scope, new InMemoryApiKeyStore(), time);
        await _replica.Ready;
        return _replica.L1;
    }

    protected override string NewUnissuedKey(ApiKeyEnvironment environment) => ApiKeyFormat.Default.Generate(environment);

    protected override Task DisposeProviderAsync()
    {
        _replica?.Dispose();
        _scope?.Dispose();
        return Task.CompletedTask;
    }
}
