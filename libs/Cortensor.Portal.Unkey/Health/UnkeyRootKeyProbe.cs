using System.Net;
using Cortensor.Portal.Unkey.Client;
using Cortensor.Portal.Unkey.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Cortensor.Portal.Unkey.Health;

/// <summary>What the probe found out about the root key.</summary>
public enum UnkeyProbeStatus
{
    /// <summary>The root key is accepted and can read the configured API and its keys.</summary>
    Ready,

    /// <summary>Unkey answered, and the root key or the API id is wrong: keys cannot be verified or managed.</summary>
    Misconfigured,

    /// <summary>
    /// Unkey answered, and the root key lacks <c>read_api</c> or <c>read_key</c>: listing, revoking and updating keys
    /// fail, but verification (<c>verify_key</c>, which cannot be probed) may still work.
    /// </summary>
    LacksReadPermission,

    /// <summary>Unkey could not be asked (timeout, network, 5xx, 429, open circuit): nothing is known about the key.</summary>
    Unreachable,
}

/// <summary>The probe's verdict, with a message that names the missing permission or setting (never the root key).</summary>
/// <param name="Status">Ready, misconfigured, lacking a read permission, or unreachable.</param>
/// <param name="Description">What was found, in detail (API id, permission, Unkey's error and request id), for the log.</param>
public sealed record UnkeyProbeResult(UnkeyProbeStatus Status, string Description);

/// <summary>
/// Asks Unkey whether the configured root key fits the configured API, with two reads that answer 401/403/404 for a
/// wrong or mis-scoped root key: <c>apis.getApi</c> (401 unknown root key; 403 without <c>read_api</c>, checked before
/// the lookup; 404 for no such API in the root key's workspace — v2_apis_get_api/handler.go), then
/// <c>apis.listKeys</c> with <c>limit: 1</c> (a disguised 404 without <c>read_key</c> — v2_apis_list_keys/handler.go).
/// Both are permissions the provider needs anyway (listing keys needs both); a missing one is
/// <see cref="UnkeyProbeStatus.LacksReadPermission"/>, not <see cref="UnkeyProbeStatus.Misconfigured"/>, since
/// verification does not need it. The verdict is reused for
/// <see cref="UnkeyOptions.ProbeInterval"/>.
/// </summary>
/// <remarks>
/// <c>verify_key</c>, <c>create_key</c>, <c>update_key</c> and <c>delete_key</c> cannot be checked without a real key or
/// a side effect: Unkey answers a verification by a root key without <c>verify_key</c> with 200 NOT_FOUND, as for an
/// unknown key. The provider catches that on traffic instead (a known key answered NOT_FOUND is checked with
/// <c>keys.getKey</c>; <c>cortensor.unkey.not_found</c> and a warning on spikes).
/// </remarks>
public sealed partial class UnkeyRootKeyProbe
{
    private readonly UnkeyClient _client;
    private readonly UnkeyOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<UnkeyRootKeyProbe> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private (UnkeyProbeResult Result, DateTimeOffset At)? _last;

    /// <param name="client">The Unkey client (with its resilience pipeline).</param>
    /// <param name="options">The API id, the root key and <see cref="UnkeyOptions.ProbeInterval"/>.</param>
    /// <param name="time">The clock for reusing a verdict.</param>
    /// <param name="logger">Logs each new verdict that is not Ready.</param>
    public UnkeyRootKeyProbe(UnkeyClient client, IOptions<UnkeyOptions> options, TimeProvider time, ILogger<UnkeyRootKeyProbe> logger)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        _client = client;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>The last verdict (asking Unkey when there is none younger than <see cref="UnkeyOptions.ProbeInterval"/>).</summary>
    /// <param name="cancellationToken">Cancels the wait.</param>
    /// <returns>The verdict.</returns>
    public async Task<UnkeyProbeResult> CheckAsync(CancellationToken cancellationToken = default)
    {
        if (Fresh() is { } fresh)
        {
            return fresh;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Fresh() is { } justProbed)
            {
                return justProbed;
            }

            var result = await ProbeAsync(cancellationToken).ConfigureAwait(false);
            _last = (result, _time.GetUtcNow());
            switch (result.Status)
            {
                case UnkeyProbeStatus.Misconfigured:
                    Log.Misconfigured(_logger, result.Description);
                    break;
                case UnkeyProbeStatus.LacksReadPermission:
                    Log.LacksReadPermission(_logger, result.Description);
                    break;
                case UnkeyProbeStatus.Unreachable:
                    Log.Unreachable(_logger, result.Description);
                    break;
            }

            return result;
        }
        finally
        {
            _gate.Release();
        }
    }

    private UnkeyProbeResult? Fresh()
        => _last is { } last && _time.GetUtcNow() - last.At < _options.ProbeInterval ? last.Result : null;

    private async Task<UnkeyProbeResult> ProbeAsync(CancellationToken cancellationToken)
    {
        var apiId = _options.ApiId;
        try
        {
            await _client.GetApiAsync(new UnkeyGetApiRequest { ApiId = apiId }, cancellationToken).ConfigureAwait(false);
        }
        catch (UnkeyApiException ex) when (!ex.IsServerError && ex.StatusCode != HttpStatusCode.TooManyRequests)
        {
            if (ex.StatusCode == HttpStatusCode.Forbidden && ex.ErrorCode == "authorization/insufficient_permissions")
            {
                return Verdict(UnkeyProbeStatus.LacksReadPermission, ex, $"the root key lacks api.{apiId}.read_api");
            }

            return Verdict(UnkeyProbeStatus.Misconfigured, ex, ex.StatusCode == HttpStatusCode.NotFound
                ? $"API {apiId} does not exist in the root key's workspace: check Cortensor:Unkey:ApiId"
                : Common(ex));
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsUnreachable(ex))
        {
            return Unreachable(ex);
        }

        try
        {
            await _client.ListKeysAsync(new UnkeyListKeysRequest { ApiId = apiId, Limit = 1 }, cancellationToken).ConfigureAwait(false);
        }
        catch (UnkeyApiException ex) when (!ex.IsServerError && ex.StatusCode != HttpStatusCode.TooManyRequests)
        {
            // getApi found the API, so listKeys' 404 is the disguise of a missing read_key.
            return ex.StatusCode == HttpStatusCode.NotFound
                ? Verdict(UnkeyProbeStatus.LacksReadPermission, ex, $"the root key lacks api.{apiId}.read_key")
                : Verdict(UnkeyProbeStatus.Misconfigured, ex, Common(ex));
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && IsUnreachable(ex))
        {
            return Unreachable(ex);
        }

        return new UnkeyProbeResult(
            UnkeyProbeStatus.Ready,
            $"the root key can read API {apiId} and its keys (verify_key, create_key, update_key and delete_key cannot be checked without side effects; watch cortensor.unkey.not_found)");
    }

    private static string Common(UnkeyApiException ex) => ex.StatusCode switch
    {
        HttpStatusCode.Unauthorized => "Unkey does not know the root key (401): Cortensor:Unkey:RootKey is wrong, deleted or not a root key",
        HttpStatusCode.Forbidden => $"Unkey refused the root key ({ex.ErrorCode}): it is disabled or expired, or its workspace is disabled",
        HttpStatusCode.BadRequest => $"Unkey refused the request ({ex.ErrorCode}): check Cortensor:Unkey:RootKey and Cortensor:Unkey:ApiId",
        _ => $"Unkey answered {(int)ex.StatusCode} ({ex.ErrorCode})",
    };

    private static UnkeyProbeResult Verdict(UnkeyProbeStatus status, UnkeyApiException ex, string what)
        => new(status, $"{what} (Unkey: {ex.Detail ?? ex.Title ?? "no detail"}; request {ex.RequestId ?? "unknown"})");

    private static UnkeyProbeResult Unreachable(Exception ex)
        => new(UnkeyProbeStatus.Unreachable, ex is UnkeyApiException api
            ? $"Unkey answered {(int)api.StatusCode} ({api.ErrorCode}); the root key could not be checked"
            : $"Unkey could not be reached ({ex.GetType().Name}); the root key could not be checked");

    private static bool IsUnreachable(Exception ex)
        => ex is UnkeyApiException or TimeoutRejectedException or BrokenCircuitException or HttpRequestException or OperationCanceledException;

    /// <summary>Event ids 8330-8339.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 8330, EventName = "UnkeyRootKeyMisconfigured", Level = LogLevel.Error,
            Message = "Unkey root key check failed: {Description}. Keys cannot be verified or managed until this is fixed")]
        public static partial void Misconfigured(ILogger logger, string description);

        [LoggerMessage(EventId = 8331, EventName = "UnkeyRootKeyUnchecked", Level = LogLevel.Warning,
            Message = "Unkey root key check could not run: {Description}")]
        public static partial void Unreachable(ILogger logger, string description);

        [LoggerMessage(EventId = 8332, EventName = "UnkeyRootKeyLacksReadPermission", Level = LogLevel.Error,
            Message = "Unkey root key check failed: {Description}. Listing, revoking and updating keys fail until this is fixed; verification may still work")]
        public static partial void LacksReadPermission(ILogger logger, string description);
    }
}
