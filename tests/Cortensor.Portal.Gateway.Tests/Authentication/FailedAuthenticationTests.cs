using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Cortensor.Portal.Gateway.Authentication;
using Cortensor.Portal.Gateway.Telemetry;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Cortensor.Portal.Gateway.Tests.Authentication;

/// <summary>
/// Requests that fail authentication, on a real Kestrel server on 127.0.0.1: counted per client address, refused with
/// 429 past the burst before their key is verified, aggregated instead of one usage row each; other addresses and
/// authenticated requests are unaffected. The host's clock is fake and never advanced unless a test says so, so the
/// allowance does not refill during a test.
/// </summary>
public sealed class FailedAuthenticationTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Attacker = "127.0.0.1";
    private const string Customer = "127.0.0.2"; // the whole of 127/8 is loopback on Linux: a second client address
    private const int Burst = 20;

    private CountingKeyProvider _keys = null!;
    private GatewayHost _host = null!;
    private HttpClient _customer = null!;

    public async Task InitializeAsync()
    {
        _host = await GatewayHost.StartAsync(
            services =>
            {
                services.AddFakeLogging();
                var inner = services.Last(d => d.ServiceType == typeof(IApiKeyProvider));
                services.AddSingleton<IApiKeyProvider>(sp => _keys = new CountingKeyProvider((IApiKeyProvider)inner.ImplementationFactory!(sp)));
                services.Configure<RateLimitingOptions>(o => o.Orgs["org_limited"] = new RateLimitLimits { RequestsPerMinute = 1 });
            },
            kestrel: true);
        _customer = ClientFrom(Customer, _host.KestrelAddress!);
        _ = _host.Keys; // creates the counting provider
    }

    public async Task DisposeAsync()
    {
        _customer.Dispose();
        await _host.DisposeAsync();
    }

    private InMemoryUsageSink Sink => (InMemoryUsageSink)_host.Services.GetRequiredService<IUsageSink>();

    [Fact]
    public async Task InvalidKeys_2000ConcurrentFromOneAddress_NoUsageRows_429PastTheBurst_ValidKeyFromAnotherAddressUnaffected()
    {
        var key = await _host.IssueKeyAsync();
        using var failures = new MetricCollector<long>(_host.Services.GetRequiredService<IMeterFactory>(), GatewayTelemetry.Name, "cortensor.gateway.authentication.failures");
        using var requests = new MetricCollector<long>(_host.Services.GetRequiredService<IMeterFactory>(), GatewayTelemetry.Name, "cortensor.gateway.requests");
        using var throttle = new SemaphoreSlim(64);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        // 2,000 garbage keys (three kinds) from 127.0.0.1, with 40 customer requests from 127.0.0.2 in the middle.
        var attack = Enumerable.Range(0, 2000).Select(i => SendAsync(_host.Client, throttle, (i % 3) switch
        {
            0 => "pk_test_garbage" + i.ToString(CultureInfo.InvariantCulture),
            1 => "not-a-key-" + i.ToString(CultureInfo.InvariantCulture),
            _ => null,
        })).ToList();
        var customer = Enumerable.Range(0, 40).Select(_ => SendAsync(_customer, throttle, key)).ToList();
        var attackResponses = await Task.WhenAll(attack);
        var customerResponses = await Task.WhenAll(customer);
        var elapsed = clock.Elapsed;

        // The allowance does not refill (the clock stands still): exactly the burst was answered 401, the rest 429.
        Assert.Equal(Burst, attackResponses.Count(r => r.Status == HttpStatusCode.Unauthorized));
        Assert.Equal(2000 - Burst, attackResponses.Count(r => r.Status == HttpStatusCode.TooManyRequests));
        var refused = attackResponses.First(r => r.Status == HttpStatusCode.TooManyRequests);
        Assert.Equal("rate_limit_exceeded", refused.Error!.Code);
        Assert.Equal("requests", refused.Error.Type);
        Assert.Equal("3", refused.RetryAfter); // 20 per minute: one more every 3 s
        Assert.All(customerResponses, r => Assert.Equal(HttpStatusCode.OK, r.Status));

        // Few reached the key provider: part of the burst (a third had no key at all), and at most the requests in
        // flight (64) when it ran out.
        Assert.InRange(_keys.Verifications(k => k != key), 1, Burst + 64);

        // Every request has been recorded (the request metric comes after the usage record), and every usage row that
        // reaches the sink is a customer's: 40, none for the 2,000.
        await UntilAsync(() => requests.GetMeasurementSnapshot().Sum(m => m.Value) >= 2040);
        await UntilAsync(() => Sink.Count >= 40, advanceClock: true);
        Assert.Equal(40, Sink.Count);
        Assert.All(Sink.Records, r => Assert.Equal("org_test", r.Usage.OrgId));
        Assert.All(Sink.Records, r => Assert.Equal(200, r.Log.StatusCode));

        // The metric counts each failure once, by reason, with no address.
        var measured = failures.GetMeasurementSnapshot();
        Assert.Equal(2000, measured.Sum(m => m.Value));
        Assert.All(measured, m => Assert.Equal(["reason"], m.Tags.Keys));
        // Refused before verification: all but the burst and those already past the check when it ran out (≤ 64 in flight).
        var early = measured.Where(m => Equals(m.Tags["reason"], FailedAuthenticationReasons.AddressRateLimited)).Sum(m => m.Value);
        Assert.InRange(early, 2000 - Burst - 64, 2000 - Burst - 1);
        output.WriteLine(
            $"2,000 failed requests from {Attacker} in {elapsed.TotalSeconds:0.0} s (with 40 customer requests from {Customer}): " +
            $"{attackResponses.Count(r => r.Status == HttpStatusCode.Unauthorized)} × 401, {attackResponses.Count(r => r.Status == HttpStatusCode.TooManyRequests)} × 429 " +
            $"({early} before verification), key provider called {_keys.Verifications(k => k != key)} times, usage rows {Sink.Count} (all customers', 40 × 200).");

        // One aggregate line per (address, reason) at the next report, adding up to the 2,000.
        _host.Time.Advance(TimeSpan.FromMinutes(1));
        var lines = await AggregateLinesAsync(expectedTotal: 2000);
        Assert.All(lines, l => Assert.Equal(Attacker, l.Address));
        Assert.Equal(lines.Count, lines.Select(l => l.Reason).Distinct().Count());
        Assert.Contains(lines, l => l.Reason == FailedAuthenticationReasons.AddressRateLimited);
        Assert.Contains(lines, l => l.Reason == FailedAuthenticationReasons.MissingApiKey);
    }

    [Fact]
    public async Task AddressPastTheBurst_Is429BeforeVerification_EvenWithAValidKey_UntilTheAllowanceRefills()
    {
        var key = await _host.IssueKeyAsync();
        for (var i = 0; i < Burst; i++)
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(_host.Client, null, "pk_test_nope")).Status);
        }

        var verified = _keys.Verifications(_ => true);

        // The 21st failure is verified once (that is how a replica learns the shared count is spent) and answered 429.
        var limited = await SendAsync(_host.Client, null, "pk_test_nope");
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.Status);
        Assert.Equal(verified + 1, _keys.Verifications(_ => true));

        // From then on nothing from that address reaches the key provider: not a bad key, not a valid one, not /v1/models.
        var valid = await SendAsync(_host.Client, null, key);
        using var models = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        models.Headers.Authorization = new("Bearer", key);
        var modelsResponse = await _host.Client.SendAsync(models);
        Assert.Equal(HttpStatusCode.TooManyRequests, valid.Status);
        Assert.Equal("3", valid.RetryAfter);
        Assert.Equal(HttpStatusCode.TooManyRequests, modelsResponse.StatusCode);
        Assert.Equal(verified + 1, _keys.Verifications(_ => true));

        // The other address is not affected.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(_customer, null, key)).Status);

        // One failure's worth refills in 3 s: the valid key passes again, and a bad key is verified (401) then refused.
        _host.Time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(_host.Client, null, key)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await SendAsync(_host.Client, null, "pk_test_nope")).Status);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await SendAsync(_host.Client, null, "pk_test_nope")).Status);
    }

    [Fact]
    public async Task AuthenticatedRequests_KeepOneUsageRowEach_IncludingBadBodyAndTheirOwnRateLimit()
    {
        var key = await _host.IssueKeyAsync(orgId: "org_limited"); // one request per minute

        var ok = await _host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), key);
        var limited = await _host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), key);
        var badBody = await _host.Client.PostJsonAsync("/v1/chat/completions", "{not json", key);
        var badKey = await _host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), "pk_test_nope");
        var ids = new[] { ok, limited, badBody }.Select(r => r.Headers.GetValues("X-Request-Id").Single()).ToList();

        await UntilAsync(() => ids.All(Sink.Contains), advanceClock: true);
        Assert.Equal([200, 429, 400], ids.Select(id => Sink.TryGet(id, out var r) ? r.Log.StatusCode : 0));
        Assert.All(ids, id => Assert.True(Sink.TryGet(id, out var r) && r.Usage.OrgId == "org_limited"));
        Assert.Equal(HttpStatusCode.Unauthorized, badKey.StatusCode);
        Assert.False(Sink.Contains(badKey.Headers.GetValues("X-Request-Id").Single()));
        Assert.Equal(3, Sink.Count);
    }

    [Fact]
    public async Task ProviderUnavailable_IsAggregated_ButNeverChargesTheAddress()
    {
        _keys.Answer = _ => ApiKeyVerification.Failed(ApiKeyVerificationStatus.Unavailable);

        for (var i = 0; i < 2 * Burst; i++)
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await SendAsync(_host.Client, null, "pk_test_anything")).Status);
        }

        _keys.Answer = null;
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(_host.Client, null, await _host.IssueKeyAsync())).Status);
        Assert.Equal(0, _host.Services.GetRequiredService<FailedAuthenticationGuard>().RefusedAddresses);
    }

    private async Task<IReadOnlyList<(string Address, string Reason, long Count)>> AggregateLinesAsync(long expectedTotal)
    {
        var collector = _host.Services.GetFakeLogCollector();
        List<(string Address, string Reason, long Count)> lines = [];
        await UntilAsync(() =>
        {
            lines = collector.GetSnapshot()
                .Where(r => r.Id.Id == 1410)
                .Select(r => (
                    (string)r.StructuredState!.Single(p => p.Key == "ClientAddress").Value!,
                    (string)r.StructuredState!.Single(p => p.Key == "Reason").Value!,
                    long.Parse(r.StructuredState!.Single(p => p.Key == "Count").Value!, CultureInfo.InvariantCulture)))
                .ToList();
            return lines.Sum(l => l.Count) >= expectedTotal;
        });
        Assert.Equal(expectedTotal, lines.Sum(l => l.Count));
        Assert.DoesNotContain(collector.GetSnapshot(), r => r.Id.Id == 1000 && r.Level >= LogLevel.Information && r.Message.Contains("status=401", StringComparison.Ordinal));
        return lines;
    }

    private async Task UntilAsync(Func<bool> condition, bool advanceClock = false)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 20 s");
            if (advanceClock)
            {
                _host.Time.Advance(TimeSpan.FromMilliseconds(250)); // the usage writer batches on the (fake) clock
            }

            await Task.Delay(20);
        }
    }

    private static async Task<Outcome> SendAsync(HttpClient client, SemaphoreSlim? throttle, string? key)
    {
        if (throttle is not null)
        {
            await throttle.WaitAsync();
        }

        try
        {
            using var response = await client.PostJsonAsync("/v1/chat/completions", Http.Chat(), key);
            var error = response.IsSuccessStatusCode ? null : await response.ReadErrorAsync();
            return new Outcome(
                response.StatusCode,
                error,
                response.Headers.TryGetValues("Retry-After", out var retry) ? retry.Single() : null,
                response.Headers.GetValues("X-Request-Id").Single());
        }
        finally
        {
            throttle?.Release();
        }
    }

    /// <summary>A client whose connections come from <paramref name="source"/> (bound before connecting).</summary>
    private static HttpClient ClientFrom(string source, Uri server) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                socket.Bind(new IPEndPoint(IPAddress.Parse(source), 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    })
    { BaseAddress = server };

    private sealed record Outcome(HttpStatusCode Status, ErrorBody? Error, string? RetryAfter, string RequestId);

    /// <summary>Counts verifications per presented key; <see cref="Answer"/> can stand in for the real provider.</summary>
    private sealed class CountingKeyProvider(IApiKeyProvider inner) : IApiKeyProvider
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _verified = new();

        public Func<string, ApiKeyVerification>? Answer { get; set; }

        public int Verifications(Func<string, bool> which) => _verified.Count(which);

        public ValueTask<ApiKeyVerification> VerifyAsync(string presentedKey, CancellationToken cancellationToken = default)
        {
            _verified.Enqueue(presentedKey);
            return Answer is { } answer ? ValueTask.FromResult(answer(presentedKey)) : inner.VerifyAsync(presentedKey, cancellationToken);
        }

        public Task<IssuedApiKey> IssueAsync(IssueApiKeyRequest request, CancellationToken cancellationToken = default) => inner.IssueAsync(request, cancellationToken);

        public Task<bool> RevokeAsync(string orgId, string keyId, CancellationToken cancellationToken = default) => inner.RevokeAsync(orgId, keyId, cancellationToken);

        public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default) => inner.ListAsync(orgId, cancellationToken);
    }
}
