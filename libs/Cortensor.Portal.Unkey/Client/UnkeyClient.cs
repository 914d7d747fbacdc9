using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Cortensor.Portal.Unkey.Configuration;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Unkey.Client;

/// <summary>Which failures of a call the resilience pipeline may retry.</summary>
internal enum UnkeyRetryMode
{
    /// <summary>The call cannot double-spend: retried on 5xx, 408, timeouts and network errors.</summary>
    Transient,

    /// <summary>The call changes or spends something: retried only when the connection could not be made (nothing was sent).</summary>
    ConnectionFailuresOnly,
}

/// <summary>
/// A typed <see cref="HttpClient"/> for the Unkey v2 API (there is no official .NET client): every call is
/// <c>POST /v2/&lt;group&gt;.&lt;op&gt;</c> with a JSON body and <c>Authorization: Bearer &lt;root key&gt;</c>, answered
/// with the <c>{meta, data}</c> envelope. A non-2xx answer (JSON or problem+JSON) throws
/// <see cref="UnkeyApiException"/>; timeouts, an open circuit and network failures surface as the resilience
/// pipeline's exceptions (<c>TimeoutRejectedException</c>, <c>BrokenCircuitException</c>, <see cref="HttpRequestException"/>).
/// </summary>
/// <remarks>
/// Each call marks its request with whether it may be retried after it was sent (see <see cref="UnkeyOptions"/>):
/// reads may, and verifications the caller has shown to be free; creates, updates, deletes, <c>ratelimit.limit</c> and
/// every other verification may not. Register it with <c>AddCortensorUnkey</c>, which adds the pipeline.
/// </remarks>
public sealed class UnkeyClient
{
    /// <summary>Name of the underlying <see cref="HttpClient"/> registration.</summary>
    public const string HttpClientName = "Cortensor.Portal.Unkey";

    internal static readonly HttpRequestOptionsKey<UnkeyRetryMode> RetryModeKey = new("Cortensor.Portal.Unkey.RetryMode");

    private static readonly MediaTypeHeaderValue JsonMediaType = new("application/json");

    private readonly HttpClient _http;
    private readonly UnkeyOptions _options;
    private readonly Uri _baseUrl;

    /// <param name="http">The HTTP client (with the resilience pipeline when registered through DI).</param>
    /// <param name="options">Base URL, root key and verification settings.</param>
    public UnkeyClient(HttpClient http, IOptions<UnkeyOptions> options)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(options);
        _http = http;
        _options = options.Value;
        var baseUrl = _options.BaseUrl.ToString();
        _baseUrl = new Uri(baseUrl.EndsWith('/') ? baseUrl : baseUrl + "/", UriKind.Absolute);
    }

    /// <summary>
    /// <c>keys.verifyKey</c>. Every key outcome is HTTP 200; read <see cref="UnkeyVerifyKeyData.Valid"/> and
    /// <see cref="UnkeyVerifyKeyData.Code"/>. Never sent again once the request went out: Unkey may have charged
    /// credits (1 by default for a key with credits) or counted <c>autoApply</c> rate limits for it.
    /// </summary>
    /// <param name="request">The key and what to check.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The verification data and Unkey's request id.</returns>
    public Task<UnkeyResponse<UnkeyVerifyKeyData>> VerifyKeyAsync(UnkeyVerifyKeyRequest request, CancellationToken cancellationToken = default)
        => VerifyKeyAsync(request, chargesNothing: false, cancellationToken);

    /// <summary>
    /// <c>keys.verifyKey</c>, retried on 5xx and timeouts only when <paramref name="chargesNothing"/> says the caller
    /// knows Unkey charges nothing for it: no credit cost on a key with credits, no rate limit named, no
    /// <c>autoApply</c> limit on the key or its identity.
    /// </summary>
    /// <param name="request">The key and what to check.</param>
    /// <param name="chargesNothing">Whether sending it twice provably costs the key nothing.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The verification data and Unkey's request id.</returns>
    public Task<UnkeyResponse<UnkeyVerifyKeyData>> VerifyKeyAsync(UnkeyVerifyKeyRequest request, bool chargesNothing, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var mode = chargesNothing && request.Ratelimits is not { Count: > 0 } ? UnkeyRetryMode.Transient : UnkeyRetryMode.ConnectionFailuresOnly;
        return SendAsync("v2/keys.verifyKey", request, UnkeyJsonContext.Default.UnkeyVerifyKeyRequest, UnkeyJsonContext.Default.UnkeyEnvelopeUnkeyVerifyKeyData, mode, cancellationToken);
    }

    /// <summary><c>keys.createKey</c>; the plaintext key is in the answer this once. Not retried once sent.</summary>
    /// <param name="request">What to create.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The new key id and key.</returns>
    public Task<UnkeyResponse<UnkeyCreateKeyData>> CreateKeyAsync(UnkeyCreateKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAsync("v2/keys.createKey", request, UnkeyJsonContext.Default.UnkeyCreateKeyRequest, UnkeyJsonContext.Default.UnkeyEnvelopeUnkeyCreateKeyData, UnkeyRetryMode.ConnectionFailuresOnly, cancellationToken);
    }

    /// <summary><c>keys.deleteKey</c> (soft delete unless <see cref="UnkeyDeleteKeyRequest.Permanent"/>). Not retried once sent.</summary>
    /// <param name="request">The key to delete.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Unkey's request id.</returns>
    public Task<UnkeyResponse<UnkeyEmptyData>> DeleteKeyAsync(UnkeyDeleteKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAsync("v2/keys.deleteKey", request, UnkeyJsonContext.Default.UnkeyDeleteKeyRequest, UnkeyJsonContext.Default.UnkeyEnvelopeUnkeyEmptyData, UnkeyRetryMode.ConnectionFailuresOnly, cancellationToken);
    }

    /// <summary>
    /// <c>keys.updateKey</c>, a partial update: a field left out is kept, a field set to JSON <c>null</c> is cleared
    /// (hence a <see cref="JsonObject"/> body, which must contain <c>keyId</c>). Not retried once sent.
    /// </summary>
    /// <param name="body">The update, for example <c>{"keyId":"key_1","enabled":false}</c>.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Unkey's request id.</returns>
    public Task<UnkeyResponse<UnkeyEmptyData>> UpdateKeyAsync(JsonObject body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        if (body["keyId"] is null)
        {
            throw new ArgumentException("The update must name its keyId.", nameof(body));
        }

        return SendAsync("v2/keys.updateKey", body, UnkeyJsonContext.Default.JsonObject, UnkeyJsonContext.Default.UnkeyEnvelopeUnkeyEmptyData, UnkeyRetryMode.ConnectionFailuresOnly, cancellationToken);
    }

    /// <summary><c>keys.getKey</c> (a 404 <see cref="UnkeyApiException"/> when there is no such key). Retried on transient failures.</summary>
    /// <param name="request">The key id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The key (never its secret).</returns>
    public Task<UnkeyResponse<UnkeyKeyData>> GetKeyAsync(UnkeyGetKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAsync("v2/keys.getKey", request, UnkeyJsonContext.Default.UnkeyGetKeyRequest, UnkeyJsonContext.Default.UnkeyEnvelopeUnkeyKeyData, UnkeyRetryMode.Transient, cancellationToken);
    }

    /// <summary><c>apis.listKeys</c>, one page (follow <see cref="UnkeyPagination.Cursor"/> while <see cref="UnkeyPagination.HasMore"/>). Retried on transient failures.</summary>
    /// <param name="request">The API, page size, cursor and optional identity filter.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The page of keys and the paging cursor.</returns>
    public Task<UnkeyResponse<IReadOnlyList<UnkeyKeyData>>> ListKeysAsync(UnkeyListKeysRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAsync("v2/apis.listKeys", request, UnkeyJsonContext.Default.UnkeyListKeysRequest, UnkeyJsonContext.Default.UnkeyEnvelopeIReadOnlyListUnkeyKeyData, UnkeyRetryMode.Transient, cancellationToken);
    }

    /// <summary><c>apis.getApi</c> (needs <c>read_api</c>: 403 without it, 404 for no such API in the root key's workspace). Retried on transient failures.</summary>
    /// <param name="request">The API id.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>The API's id and name.</returns>
    public Task<UnkeyResponse<UnkeyApiData>> GetApiAsync(UnkeyGetApiRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAsync("v2/apis.getApi", request, UnkeyJsonContext.Default.UnkeyGetApiRequest, UnkeyJsonContext.Default.UnkeyEnvelopeUnkeyApiData, UnkeyRetryMode.Transient, cancellationToken);
    }

    /// <summary><c>ratelimit.limit</c>: counts <see cref="UnkeyRateLimitRequest.Cost"/> against a standalone limit (HTTP 200 either way: read <see cref="UnkeyRateLimitData.Success"/>). Not retried once sent.</summary>
    /// <param name="request">Namespace, identifier, limit and window.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    /// <returns>Whether the call is allowed, with the remaining units and the reset time.</returns>
    public Task<UnkeyResponse<UnkeyRateLimitData>> LimitAsync(UnkeyRateLimitRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return SendAsync("v2/ratelimit.limit", request, UnkeyJsonContext.Default.UnkeyRateLimitRequest, UnkeyJsonContext.Default.UnkeyEnvelopeUnkeyRateLimitData, UnkeyRetryMode.ConnectionFailuresOnly, cancellationToken);
    }

    private async Task<UnkeyResponse<TData>> SendAsync<TRequest, TData>(
        string path,
        TRequest body,
        JsonTypeInfo<TRequest> requestType,
        JsonTypeInfo<UnkeyEnvelope<TData>> responseType,
        UnkeyRetryMode retryMode,
        CancellationToken cancellationToken)
    {
        // Serialized once into a byte array, so a retry re-sends exactly the same body.
        var content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(body, requestType));
        content.Headers.ContentType = JsonMediaType;
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_baseUrl, path)) { Content = content };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.RootKey);
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        request.Options.Set(RetryModeKey, retryMode);

        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw ToException(response, bytes);
        }

        UnkeyEnvelope<TData>? envelope;
        try
        {
            envelope = JsonSerializer.Deserialize(bytes, responseType);
        }
        catch (JsonException ex)
        {
            throw new UnkeyApiException(response.StatusCode, null, null, null, ex);
        }

        if (envelope is null || envelope.Data is null)
        {
            throw new UnkeyApiException(response.StatusCode, envelope?.Error ?? new UnkeyError { Title = "Malformed response", Detail = "The response has no data." }, envelope?.Meta?.RequestId);
        }

        return new UnkeyResponse<TData>(envelope.Data, envelope.Meta?.RequestId, envelope.Pagination);
    }

    private static UnkeyApiException ToException(HttpResponseMessage response, byte[] body)
    {
        UnkeyEnvelope<UnkeyEmptyData>? envelope = null;
        try
        {
            // application/json and application/problem+json carry the same {meta, error} shape.
            envelope = body.Length == 0 ? null : JsonSerializer.Deserialize(body, UnkeyJsonContext.Default.UnkeyEnvelopeUnkeyEmptyData);
        }
        catch (JsonException)
        {
            // A proxy's HTML or plain-text error page: the status says enough.
        }

        TimeSpan? retryAfter = response.Headers.RetryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - (response.Headers.Date ?? date),
            _ => null,
        };
        return new UnkeyApiException(response.StatusCode, envelope?.Error, envelope?.Meta?.RequestId, retryAfter);
    }
}
