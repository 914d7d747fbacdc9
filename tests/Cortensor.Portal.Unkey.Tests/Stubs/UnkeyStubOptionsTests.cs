using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Testing.Unkey;

namespace Cortensor.Portal.Unkey.Tests.Stubs;

/// <summary>
/// The constructor options the benchmark's <c>serve unkey-stub</c> uses (its own root key and API, a verifyKey
/// latency, no request log), checked over raw HTTP.
/// </summary>
public sealed class UnkeyStubOptionsTests : IDisposable
{
    private const string BenchRootKey = "unkey_benchRootKeyForOptionsTest";
    private const string BenchApiId = "api_bench9999";
    private readonly HttpClient _http = new();

    public void Dispose() => _http.Dispose();

    private async Task<(int Status, JsonElement Body)> PostAsync(UnkeyStub stub, string operation, string json, string rootKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(stub.Url, "/v2/" + operation)) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", rootKey);
        using var response = await _http.SendAsync(request);
        return ((int)response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    private async Task<string> CreateAsync(UnkeyStub stub)
    {
        var (status, body) = await PostAsync(stub, "keys.createKey", $$"""{"apiId":"{{BenchApiId}}","prefix":"pk_test"}""", BenchRootKey);
        Assert.Equal(200, status);
        return body.GetProperty("data").GetProperty("key").GetString()!;
    }

    [Fact]
    public async Task GivenRootKeyAndApi_HoldThePortalsPermissions_AndReplaceTheDefaults()
    {
        using var stub = new UnkeyStub(rootKey: BenchRootKey, apiId: BenchApiId);

        var key = await CreateAsync(stub);
        var (status, verified) = await PostAsync(stub, "keys.verifyKey", $$"""{"key":"{{key}}"}""", BenchRootKey);

        Assert.Equal(200, status);
        Assert.Equal("VALID", verified.GetProperty("data").GetProperty("code").GetString());
        Assert.Equal((BenchRootKey, BenchApiId), (stub.PortalRootKey, stub.PortalApiId));
        Assert.Equal(401, (await PostAsync(stub, "keys.verifyKey", $$"""{"key":"{{key}}"}""", UnkeyStub.RootKey)).Status);
        var (defaultApi, _) = await PostAsync(stub, "keys.createKey", $$"""{"apiId":"{{UnkeyStub.ApiId}}"}""", BenchRootKey);
        Assert.Equal(404, defaultApi); // the default API does not exist in this stub
    }

    [Fact]
    public async Task VerifyLatency_DelaysEveryVerifyKeyAnswer()
    {
        var latency = TimeSpan.FromMilliseconds(300);
        using var stub = new UnkeyStub(rootKey: BenchRootKey, apiId: BenchApiId, verifyLatency: latency);
        var key = await CreateAsync(stub);

        var clock = Stopwatch.StartNew();
        var (status, _) = await PostAsync(stub, "keys.verifyKey", $$"""{"key":"{{key}}"}""", BenchRootKey);
        clock.Stop();

        Assert.Equal(200, status);
        Assert.True(clock.Elapsed >= latency - TimeSpan.FromMilliseconds(20), $"answered after {clock.Elapsed.TotalMilliseconds} ms");
    }

    [Fact]
    public async Task KeepRequestsOff_KeepsNoRequestLogNorVerifyBodies()
    {
        using var stub = new UnkeyStub(rootKey: BenchRootKey, apiId: BenchApiId, keepRequests: false);
        var key = await CreateAsync(stub);

        var (status, verified) = await PostAsync(stub, "keys.verifyKey", $$"""{"key":"{{key}}"}""", BenchRootKey);

        Assert.Equal(200, status);
        Assert.Equal("VALID", verified.GetProperty("data").GetProperty("code").GetString());
        Assert.Equal(2, stub.Requests);
        Assert.Empty(stub.VerifyBodies);
        Assert.Empty(stub.Server.LogEntries);
    }
}
