using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Protocols;
using Microsoft.Extensions.DependencyInjection;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using static Cortensor.Portal.Fleet.Tests.Protocols.ProtocolTestSupport;

namespace Cortensor.Portal.Fleet.Tests.Protocols;

public sealed class RouterClientsRegistrationTests
{
    private static ServiceProvider BuildProvider(int calls = 1)
    {
        var services = new ServiceCollection().AddLogging();
        for (var i = 0; i < calls; i++)
        {
            services.AddCortensorRouterClients();
        }

        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });
    }

    [Fact]
    public async Task AddCortensorRouterClients_ResolvedCortensorClient_CompletesAgainstRouter()
    {
        using var server = StartServer();
        server.Given(Request.Create().WithPath("/api/v1/completions/42").UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithBody("""{"choices":[{"text":"via DI","finish_reason":"stop"}]}"""));
        await using var provider = BuildProvider();
        var target = Target(server.Url!);

        var first = await provider.GetRequiredService<IRouterProtocolClientResolver>().Get(RouterProtocol.Cortensor)
            .CompleteAsync(target, NewRequest(), CancellationToken.None);
        var second = await provider.GetRequiredService<IRouterProtocolClientResolver>().Get(RouterProtocol.Cortensor)
            .CompleteAsync(target, NewRequest(), CancellationToken.None);

        Assert.Equal("via DI", first.Text);
        Assert.Equal("via DI", second.Text);
        Assert.Equal(["/api/v1/completions/42", "/api/v1/completions/42"], Paths(server));
    }

    [Fact]
    public async Task AddCortensorRouterClients_RouterAnswers503_IsNotRetried()
    {
        using var server = StartServer();
        server.Given(Request.Create().WithPath("/api/v1/completions/42").UsingPost())
            .RespondWith(Response.Create().WithStatusCode(503).WithBody("busy"));
        await using var provider = BuildProvider();

        var ex = await Assert.ThrowsAsync<RouterException>(() => provider.GetRequiredService<CortensorRouterClient>()
            .CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.Unavailable, ex.Kind);
        Assert.Equal("busy", ex.RouterMessage);
        Assert.Single(server.LogEntries);
    }

    [Fact]
    public async Task AddCortensorRouterClients_RouterRedirects_IsNotFollowedAndFailsTheCall()
    {
        using var server = StartServer();
        server.Given(Request.Create().WithPath("/api/v1/completions/42").UsingPost())
            .RespondWith(Response.Create().WithStatusCode(307).WithHeader("Location", server.Url + "/elsewhere"));
        server.Given(Request.Create().WithPath("/elsewhere").UsingAnyMethod())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithBody("""{"choices":[{"text":"followed","finish_reason":"stop"}]}"""));
        await using var provider = BuildProvider();

        var ex = await Assert.ThrowsAsync<RouterException>(() => provider.GetRequiredService<CortensorRouterClient>()
            .CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.BadResponse, ex.Kind);
        Assert.DoesNotContain("/elsewhere", Paths(server));
    }

    [Fact]
    public async Task AddCortensorRouterClients_RouterSetsCookie_IsNotSentOnTheNextCall()
    {
        using var server = StartServer();
        server.Given(Request.Create().WithPath("/api/v1/completions/42").UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithHeader("Set-Cookie", "session=customer-a; Path=/")
                .WithBody("""{"choices":[{"text":"ok","finish_reason":"stop"}]}"""));
        await using var provider = BuildProvider();
        var target = Target(server.Url!);

        await provider.GetRequiredService<CortensorRouterClient>().CompleteAsync(target, NewRequest(), CancellationToken.None);
        await provider.GetRequiredService<CortensorRouterClient>().CompleteAsync(target, NewRequest(), CancellationToken.None);

        Assert.Equal(2, server.LogEntries.Count());
        Assert.All(server.LogEntries, e => Assert.False(e.RequestMessage.Headers?.ContainsKey("Cookie") ?? false));
    }

    [Fact]
    public async Task AddCortensorRouterClients_CalledTwice_RegistersOneClientPerProtocol()
    {
        await using var provider = BuildProvider(calls: 2);

        var clients = provider.GetServices<IRouterProtocolClient>().ToList();

        Assert.Equal(2, clients.Count);
        Assert.Single(clients.OfType<CortensorRouterClient>());
        Assert.Single(clients.OfType<OpenAICompatibleRouterClient>());
        Assert.IsType<OpenAICompatibleRouterClient>(provider.GetRequiredService<IRouterProtocolClientResolver>().Get(RouterProtocol.OpenAICompatible));
        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
    }

    [Fact]
    public void AddCortensorRouterClients_CalledTwice_DoesNotDuplicateDescriptors()
    {
        var once = new ServiceCollection().AddLogging().AddCortensorRouterClients();
        var twice = new ServiceCollection().AddLogging().AddCortensorRouterClients().AddCortensorRouterClients();

        Assert.Equal(once.Count, twice.Count);
    }

    [Fact]
    public async Task AddCortensorRouterClients_HttpClients_HaveInfiniteTimeout()
    {
        await using var provider = BuildProvider();
        var factory = provider.GetRequiredService<IHttpClientFactory>();

        Assert.Equal(Timeout.InfiniteTimeSpan, factory.CreateClient(nameof(CortensorRouterClient)).Timeout);
        Assert.Equal(Timeout.InfiniteTimeSpan, factory.CreateClient(nameof(OpenAICompatibleRouterClient)).Timeout);
    }

    [Fact]
    public void AddCortensorRouterClients_TimeProviderAlreadyRegistered_KeepsIt()
    {
        var custom = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        using var provider = new ServiceCollection().AddLogging().AddSingleton<TimeProvider>(custom).AddCortensorRouterClients().BuildServiceProvider();

        Assert.Same(custom, provider.GetRequiredService<TimeProvider>());
    }

    [Fact]
    public void RouterProtocolClients_ProtocolNotRegistered_ThrowsInvalidOperation()
    {
        var clients = new RouterProtocolClients([CortensorClient()]);

        Assert.IsType<CortensorRouterClient>(clients.Get(RouterProtocol.Cortensor));
        Assert.Throws<InvalidOperationException>(() => clients.Get(RouterProtocol.OpenAICompatible));
    }
}
