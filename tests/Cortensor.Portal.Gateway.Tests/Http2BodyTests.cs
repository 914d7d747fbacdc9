using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Cortensor.Portal.Gateway.Telemetry;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Metering.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// The gateway behind a real Kestrel on 127.0.0.1 that speaks only HTTP/2 (h2c, prior knowledge), with a client that
/// sends nothing else. Over HTTP/2 a body the client abandons or trickles is not a <c>BadHttpRequestException</c> as
/// over HTTP/1.1: Kestrel ends the read with an aborted-stream error. Either way it is the client's doing: recorded as
/// 499 or 408, never a 5xx, never logged as an error.
/// </summary>
public sealed class Http2BodyTests : IAsyncLifetime
{
    private readonly BodyReadProbe _probe = new();
    private GatewayHost _host = null!;
    private string _key = null!;
    private MetricCollector<long> _requests = null!;

    public async Task InitializeAsync()
    {
        _host = await GatewayHost.StartAsync(
            services =>
            {
                // The shortest grace period Kestrel accepts is just over its 1 s heartbeat.
                services.Configure<KestrelServerOptions>(o => o.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 100, gracePeriod: TimeSpan.FromSeconds(2)));
                services.AddLogging(logging => logging.AddFakeLogging());
                services.AddSingleton<Microsoft.AspNetCore.Hosting.IStartupFilter>(_probe);
            },
            kestrel: true,
            http2Only: true);
        _key = await _host.IssueKeyAsync();
        _requests = new MetricCollector<long>(_host.Services.GetRequiredService<IMeterFactory>(), GatewayTelemetry.Name, "cortensor.gateway.requests");
    }

    public async Task DisposeAsync()
    {
        _requests.Dispose();
        await _host.DisposeAsync();
    }

    private IReadOnlyList<FakeLogRecord> ErrorLogs()
        => [.. _host.Services.GetRequiredService<FakeLogCollector>().GetSnapshot().Where(r => r.Level >= LogLevel.Error)];

    private HttpRequestMessage StalledChat(out byte[] body)
    {
        body = Encoding.UTF8.GetBytes(Http.Chat(content: new string('s', 400)));
        return Http2Chat(new StalledContent(body.AsMemory(0, 20), body.Length));
    }

    /// <summary>A message of its own does not take the client's default version: HTTP/2, exactly, is set here.</summary>
    private HttpRequestMessage Http2Chat(HttpContent content)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = content,
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _key);
        return request;
    }

    /// <summary>The one request's status as metrics and usage recorded it; both must agree.</summary>
    private async Task<int> RecordedStatusAsync()
    {
        await _requests.WaitForMeasurementsAsync(1, TimeSpan.FromSeconds(20));
        var measured = Assert.Single(_requests.GetMeasurementSnapshot());
        var status = Assert.IsType<int>(measured.Tags["http.response.status_code"]);

        var sink = (InMemoryUsageSink)_host.Services.GetRequiredService<IUsageSink>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (sink.Records.Count == 0 && DateTime.UtcNow < deadline)
        {
            _host.Time.Advance(TimeSpan.FromMilliseconds(250)); // the usage writer batches on the (fake) clock
            await Task.Delay(20);
        }

        var record = Assert.Single(sink.Records);
        Assert.Equal(status, record.Log.StatusCode);
        return status;
    }

    [Fact]
    public async Task Http2_Sanity_TheClientReallySpeaksHttp2()
    {
        using var request = Http2Chat(new StringContent(Http.Chat(), Encoding.UTF8, "application/json"));
        using var response = await _host.Client.SendAsync(request);

        Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        Assert.Equal(HttpVersion.Version20, response.Version);
    }

    [Fact]
    public async Task Http2_StreamResetMidBody_IsRecordedAsClientClosed_NotAServerError()
    {
        using var request = StalledChat(out _);
        using var cancel = new CancellationTokenSource();
        var send = _host.Client.SendAsync(request, cancel.Token);

        // The gateway holds the first 20 bytes and waits for the rest; cancelling now makes HttpClient send
        // RST_STREAM for a stream whose body is half read.
        await _probe.WaitingForMoreBody.WaitAsync(TimeSpan.FromSeconds(20));
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send);

        Assert.Equal(StatusCodes.Status499ClientClosedRequest, await RecordedStatusAsync());
        var sink = (InMemoryUsageSink)_host.Services.GetRequiredService<IUsageSink>();
        Assert.Equal(UsageOutcome.Cancelled, Assert.Single(sink.Records).Usage.Outcome);
        Assert.Empty(ErrorLogs());
        Assert.Equal(0, _host.Router.Calls);
    }

    [Fact]
    public async Task Http2_BodySlowerThanMinimumDataRate_IsRecordedAs408_NotAServerError()
    {
        using var request = StalledChat(out _);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        // 20 bytes, then silence: Kestrel gives up after the grace period and, over HTTP/2, aborts the whole
        // connection, so the client gets no answer; the gateway's records must still say 408.
        var send = _host.Client.SendAsync(request, bound.Token);
        await _probe.WaitingForMoreBody.WaitAsync(TimeSpan.FromSeconds(20));
        // The client sees its connection dropped: SocketsHttpHandler reports it as HttpRequestException, or, when the
        // abort lands while it is still sending the body, as the body write's cancellation. Either is fine here, as
        // long as it was not this test's own bound that fired.
        var dropped = await Assert.ThrowsAnyAsync<Exception>(() => send);
        Assert.True(dropped is HttpRequestException or OperationCanceledException, dropped.ToString());
        Assert.False(bound.IsCancellationRequested, "the server never gave up on the body");

        Assert.Equal(StatusCodes.Status408RequestTimeout, await RecordedStatusAsync());
        var sink = (InMemoryUsageSink)_host.Services.GetRequiredService<IUsageSink>();
        var record = Assert.Single(sink.Records);
        Assert.Equal(UsageOutcome.Rejected, record.Usage.Outcome);
        Assert.Equal("request_timeout", record.Log.ErrorCode);
        Assert.Empty(ErrorLogs());
        Assert.Equal(0, _host.Router.Calls);
    }

    /// <summary>Declares the full length, sends a prefix, then sends nothing more until the request is cancelled.</summary>
    private sealed class StalledContent : HttpContent
    {
        private readonly ReadOnlyMemory<byte> _prefix;
        private readonly long _declaredLength;

        public StalledContent(ReadOnlyMemory<byte> prefix, long declaredLength)
        {
            _prefix = prefix;
            _declaredLength = declaredLength;
            Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context)
            => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            await stream.WriteAsync(_prefix, cancellationToken);
            await stream.FlushAsync(cancellationToken);
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _declaredLength;
            return true;
        }
    }
}
