using System.Collections.Concurrent;
using System.Net;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// The gateway writes each admitted request to the usage journal before the router is called, with what an
/// interrupted record needs, and a stream's progress while it runs.
/// </summary>
public sealed class UsageJournalingTests : IAsyncLifetime
{
    private readonly RecordingJournal _journal = new();
    private GatewayHost _host = null!;
    private string _key = null!;

    public async Task InitializeAsync()
    {
        _host = await GatewayHost.StartAsync(services => services.AddSingleton<IUsageJournal>(_journal));
        _key = await _host.IssueKeyAsync();
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private InMemoryUsageSink Sink => (InMemoryUsageSink)_host.Services.GetRequiredService<IUsageSink>();

    private async Task<UsageRecord> RecordForAsync(string requestId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        UsageRecord? record;
        while (!Sink.TryGet(requestId, out record) && DateTime.UtcNow < deadline)
        {
            _host.Time.Advance(TimeSpan.FromMilliseconds(250));
            await Task.Delay(20);
        }

        Assert.NotNull(record);
        return record;
    }

    [Fact]
    public async Task Admitted_StartIsJournaledBeforeTheRouterCall_WithTheRecordsTimeAndIds()
    {
        var startsWhenRouterCalled = -1;
        _host.Router.OnCall = () => startsWhenRouterCalled = _journal.Starts.Count;

        var response = await _host.ChatAsync(Http.Chat(content: "Tell me something"), _key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, startsWhenRouterCalled);
        var start = Assert.Single(_journal.Starts);
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        var record = await RecordForAsync(requestId);
        Assert.Equal(requestId, start.RequestId);
        Assert.Equal(record.Usage.OccurredAt, start.StartedAt); // the same key in every store
        Assert.Equal("org_test", start.OrgId);
        Assert.Equal(record.Usage.KeyId, start.KeyId);
        Assert.Equal("m1", start.Model);
        Assert.Equal("p1", start.Pool);
        Assert.Equal("r1", start.RouterId);
        Assert.True(start.EstimatedPromptTokens > 0);
        Assert.False(start.Stream);
        Assert.Equal("POST", start.Method);
        Assert.Equal("/v1/chat/completions", start.Path);
    }

    [Fact]
    public async Task Stream_ProgressIsJournaledWithTheTokensSentSoFar()
    {
        _host.Router.StreamChunks = ["Hello ", "from ", "a ", "stream."];

        var response = await _host.ChatAsync(Http.Chat(extra: ",\"stream\":true"), _key);
        await response.Content.ReadAsStringAsync();

        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        var start = Assert.Single(_journal.Starts);
        Assert.True(start.Stream);
        var progress = _journal.Progress.Where(p => p.RequestId == requestId).Select(p => p.Tokens).ToArray();
        Assert.NotEmpty(progress);
        Assert.Equal(progress.Order(), progress);
        Assert.Equal(("Hello from a stream.".Length + 3) / 4, progress[^1]);
    }

    [Fact]
    public async Task RefusedBeforeAdmission_NothingIsJournaled()
    {
        var unknownModel = await _host.ChatAsync(Http.Chat(model: "no-such-model"), _key);
        var badKey = await _host.ChatAsync(Http.Chat(), "pk_test_not_a_key");

        Assert.Equal(HttpStatusCode.NotFound, unknownModel.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, badKey.StatusCode);
        Assert.Empty(_journal.Starts);
        Assert.Equal(0, _host.Router.Calls);
    }

    private sealed class RecordingJournal : IUsageJournal
    {
        public ConcurrentQueue<UsageStart> Starts { get; } = new();

        public ConcurrentQueue<(string RequestId, int Tokens)> Progress { get; } = new();

        public void Started(UsageStart start) => Starts.Enqueue(start);

        public void Streamed(string requestId, int completionTokens) => Progress.Enqueue((requestId, completionTokens));
    }
}
