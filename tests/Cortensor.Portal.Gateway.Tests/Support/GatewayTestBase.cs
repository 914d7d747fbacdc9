namespace Cortensor.Portal.Gateway.Tests.Support;

/// <summary>A fresh <see cref="GatewayHost"/> and a valid key for every test.</summary>
public abstract class GatewayTestBase : IAsyncLifetime
{
    internal GatewayHost Host { get; private set; } = null!;

    internal string Key { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Host = await GatewayHost.StartAsync();
        Key = await Host.IssueKeyAsync();
    }

    public async Task DisposeAsync() => await Host.DisposeAsync();
}
