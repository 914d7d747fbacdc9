using System.Net;
using System.Net.Sockets;
using Cortensor.Portal.Fleet.Protocols;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using static Cortensor.Portal.Fleet.Tests.Protocols.ProtocolTestSupport;

namespace Cortensor.Portal.Fleet.Tests.Protocols;

public sealed class RouterErrorMappingTests : IDisposable
{
    private const string PathForm = "/api/v1/completions/42";

    private readonly WireMockServer server = StartServer();

    public void Dispose() => server.Stop();

    private void Answer(int status, string body, string contentType = "application/json") =>
        server.Given(Request.Create().WithPath(PathForm).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", contentType).WithBody(body));

    private Task<RouterCompletion> CallAsync() => CortensorClient().CompleteAsync(Target(server.Url!), NewRequest(), CancellationToken.None);

    [Theory]
    [InlineData(401, RouterFailureKind.Unauthorized)]
    [InlineData(403, RouterFailureKind.Unauthorized)]
    [InlineData(429, RouterFailureKind.Unavailable)]
    [InlineData(502, RouterFailureKind.Unavailable)]
    [InlineData(503, RouterFailureKind.Unavailable)]
    [InlineData(408, RouterFailureKind.Timeout)]
    [InlineData(504, RouterFailureKind.Timeout)]
    [InlineData(400, RouterFailureKind.BadResponse)]
    [InlineData(500, RouterFailureKind.BadResponse)]
    public async Task CompleteAsync_ErrorStatus_MapsToFailureKindWithStatusCode(int status, RouterFailureKind expected)
    {
        Answer(status, """{"error":"nope"}""");

        var ex = await Assert.ThrowsAsync<RouterException>(CallAsync);

        Assert.Equal(expected, ex.Kind);
        Assert.Equal(status, ex.StatusCode);
        Assert.Equal("nope", ex.RouterMessage);
        Assert.Single(server.LogEntries);
    }

    [Theory]
    [InlineData("""{"error":{"message":"Session 42 is not active","type":"router_error"}}""", "application/json", "Session 42 is not active")]
    [InlineData("""{"error":"miners unavailable"}""", "application/json", "miners unavailable")]
    [InlineData("""{"message":"invalid max_tokens"}""", "application/json", "invalid max_tokens")]
    [InlineData("Internal Server Error:\n   task queue full", "text/plain", "Internal Server Error: task queue full")]
    [InlineData("<html><head><title>500 Internal Server Error</title></head><body><h1>Oops</h1></body></html>", "text/html", "500 Internal Server Error")]
    [InlineData("<html><body><h1>Server &amp; miners down</h1></body></html>", "text/html", "Server & miners down")]
    public async Task CompleteAsync_ErrorBody_ExtractsRouterMessage(string body, string contentType, string expected)
    {
        Answer(500, body, contentType);

        var ex = await Assert.ThrowsAsync<RouterException>(CallAsync);

        Assert.Equal(expected, ex.RouterMessage);
    }

    [Fact]
    public async Task CompleteAsync_LongErrorBody_TrimsRouterMessageTo300Chars()
    {
        Answer(500, new string('x', 5000), "text/plain");

        var ex = await Assert.ThrowsAsync<RouterException>(CallAsync);

        Assert.NotNull(ex.RouterMessage);
        Assert.InRange(ex.RouterMessage.Length, 1, 300);
    }

    [Fact]
    public async Task CompleteAsync_RouterEchoesKeyAndPrompt_NeitherAppearsInMessageOrRouterMessage()
    {
        Answer(401, $$$"""{"error":{"message":"invalid token {{{ApiKey}}} for prompt '{{{Prompt}}}'"}}""");

        var ex = await Assert.ThrowsAsync<RouterException>(CallAsync);

        Assert.Equal(RouterFailureKind.Unauthorized, ex.Kind);
        Assert.DoesNotContain(ApiKey, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Prompt, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(ApiKey, ex.ToString(), StringComparison.Ordinal);
        Assert.NotNull(ex.RouterMessage);
        Assert.DoesNotContain(ApiKey, ex.RouterMessage, StringComparison.Ordinal);
        Assert.DoesNotContain(Prompt, ex.RouterMessage, StringComparison.Ordinal);
        Assert.StartsWith("invalid token [redacted]", ex.RouterMessage, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompleteAsync_ResponseSlowerThanHttpTimeout_ThrowsTimeout()
    {
        server.Given(Request.Create().WithPath(PathForm).UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithBody("""{"choices":[{"text":"late"}]}""").WithDelay(TimeSpan.FromSeconds(3)));
        var request = NewRequest(taskTimeoutSeconds: 1, slackSeconds: 0);
        var started = TimeProvider.System.GetTimestamp();

        var ex = await Assert.ThrowsAsync<RouterException>(() => CortensorClient().CompleteAsync(Target(server.Url!), request, CancellationToken.None));

        Assert.Equal(RouterFailureKind.Timeout, ex.Kind);
        Assert.Null(ex.StatusCode);
        Assert.InRange(TimeProvider.System.GetElapsedTime(started), TimeSpan.FromSeconds(0.8), TimeSpan.FromSeconds(2.8));
    }

    [Fact]
    public async Task CompleteAsync_HttpTimeoutOnInjectedTimeProvider_ThrowsTimeout()
    {
        var time = new FakeTimeProvider();
        var handler = new DelegateHandler(async (_, token) =>
        {
            await Task.Delay(Timeout.Infinite, token);
            return new HttpResponseMessage(HttpStatusCode.OK);
        });
        var request = NewRequest(taskTimeoutSeconds: 100, slackSeconds: 20);
        var call = CortensorClient(handler, time).CompleteAsync(Target("http://router.test"), request, CancellationToken.None);

        time.Advance(TimeSpan.FromSeconds(119));
        Assert.False(call.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));

        var ex = await Assert.ThrowsAsync<RouterException>(() => call);
        Assert.Equal(RouterFailureKind.Timeout, ex.Kind);
    }

    [Fact]
    public async Task CompleteAsync_CallerCancels_ThrowsOperationCanceledNotRouterException()
    {
        var handler = new DelegateHandler(async (_, token) =>
        {
            await Task.Delay(Timeout.Infinite, token);
            return new HttpResponseMessage(HttpStatusCode.OK);
        });
        using var cts = new CancellationTokenSource();
        var call = CortensorClient(handler).CompleteAsync(Target("http://router.test"), NewRequest(), cts.Token);

        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
    }

    [Fact]
    public async Task CompleteAsync_NothingListening_ThrowsUnavailable()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        var ex = await Assert.ThrowsAsync<RouterException>(() =>
            CortensorClient().CompleteAsync(Target($"http://127.0.0.1:{port}"), NewRequest(), CancellationToken.None));

        Assert.Equal(RouterFailureKind.Unavailable, ex.Kind);
        Assert.Null(ex.StatusCode);
        Assert.IsType<HttpRequestException>(ex.InnerException);
    }
}
