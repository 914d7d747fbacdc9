using System.Net;
using System.Net.Sockets;
using Cortensor.Portal.Unkey.Client;
using Polly;
using Polly.Timeout;

namespace Cortensor.Portal.Unkey.Tests.Client;

/// <summary>What the retry strategy may send again: transient failures for calls that cannot double-spend, connect failures for the rest.</summary>
public sealed class UnkeyResilienceTests
{
    private static HttpRequestMessage Request(UnkeyRetryMode? mode)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "https://api.unkey.com/v2/keys.verifyKey");
        if (mode is { } value)
        {
            request.Options.Set(UnkeyClient.RetryModeKey, value);
        }

        return request;
    }

    private static Outcome<HttpResponseMessage> Status(HttpStatusCode status) => Outcome.FromResult(new HttpResponseMessage(status));

    private static Outcome<HttpResponseMessage> Failure(Exception exception) => Outcome.FromException<HttpResponseMessage>(exception);

    public static TheoryData<string, bool, bool> Cases => new()
    {
        // outcome, retried when Transient, retried when ConnectionFailuresOnly
        { "500", true, false },
        { "502", true, false },
        { "503", true, false },
        { "408", true, false },
        { "429", false, false },
        { "400", false, false },
        { "401", false, false },
        { "403", false, false },
        { "412", false, false },
        { "200", false, false },
        { "attempt-timeout", true, false },
        { "connection-refused", true, true },
        { "dns", true, true },
        { "tls", true, true },
        { "response-ended", true, false },
    };

    private static Outcome<HttpResponseMessage> OutcomeOf(string name) => name switch
    {
        "attempt-timeout" => Failure(new TimeoutRejectedException()),
        "connection-refused" => Failure(new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused", new SocketException((int)SocketError.ConnectionRefused))),
        "dns" => Failure(new HttpRequestException(HttpRequestError.NameResolutionError, "Name or service not known")),
        "tls" => Failure(new HttpRequestException(HttpRequestError.SecureConnectionError, "The SSL connection could not be established")),
        "response-ended" => Failure(new HttpRequestException(HttpRequestError.ResponseEnded, "The response ended prematurely")),
        _ => Status((HttpStatusCode)int.Parse(name, System.Globalization.CultureInfo.InvariantCulture)),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void ShouldRetry_FollowsTheRequestsRetryMode(string outcome, bool transient, bool connectOnly)
    {
        using var safe = Request(UnkeyRetryMode.Transient);
        using var spending = Request(UnkeyRetryMode.ConnectionFailuresOnly);
        using var unmarked = Request(null);

        Assert.Equal(transient, UnkeyResilience.ShouldRetry(safe, OutcomeOf(outcome)));
        Assert.Equal(connectOnly, UnkeyResilience.ShouldRetry(spending, OutcomeOf(outcome)));
        Assert.Equal(connectOnly, UnkeyResilience.ShouldRetry(unmarked, OutcomeOf(outcome))); // unknown calls are treated as spending
    }

    [Fact]
    public void CircuitBreaker_CountsUnkeyFailures_NotRequestErrorsOrWorkspaceLimits()
    {
        Assert.True(UnkeyResilience.IsUnkeyFailure(Status(HttpStatusCode.InternalServerError)));
        Assert.True(UnkeyResilience.IsUnkeyFailure(Failure(new TimeoutRejectedException())));
        Assert.True(UnkeyResilience.IsUnkeyFailure(Failure(new HttpRequestException("reset"))));
        Assert.False(UnkeyResilience.IsUnkeyFailure(Status(HttpStatusCode.TooManyRequests)));
        Assert.False(UnkeyResilience.IsUnkeyFailure(Status(HttpStatusCode.Unauthorized)));
        Assert.False(UnkeyResilience.IsUnkeyFailure(Status(HttpStatusCode.OK)));
    }
}
