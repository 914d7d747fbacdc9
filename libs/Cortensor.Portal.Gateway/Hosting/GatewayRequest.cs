using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.OpenAI;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>
/// Request ids. The gateway always mints its own <c>req_…</c>: it keys usage events and request logs
/// (idempotency), so a caller must not be able to choose it (a repeated id would make a second request look like
/// a replay and go unbilled). A caller's own id, from <c>X-Client-Request-Id</c> (OpenAI's header) or else
/// <c>X-Request-Id</c>, is echoed back in <c>X-Client-Request-Id</c> and logged next to ours when well-formed.
/// </summary>
public static class RequestIds
{
    public const string HeaderName = "X-Request-Id";

    public const string ClientHeaderName = "X-Client-Request-Id";

    private const string ItemKey = "Cortensor.Portal.RequestId";
    private const string ClientItemKey = "Cortensor.Portal.ClientRequestId";

    /// <summary>Well-formed: 1..128 chars of letters, digits and <c>- _ . :</c> (nothing that could split a header or a log line).</summary>
    public static bool IsWellFormed(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 128)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary><c>req_</c> + 32 hex chars of a version-7 GUID, so ids sort by time.</summary>
    public static string Mint() => "req_" + Guid.CreateVersion7().ToString("N");

    /// <summary>The id of this request, minted on first use and echoed in the response header.</summary>
    public static string Get(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Items.TryGetValue(ItemKey, out var existing) && existing is string id)
        {
            return id;
        }

        id = Mint();
        context.Items[ItemKey] = id;
        var headers = context.Request.Headers;
        var client = headers[ClientHeaderName].ToString();
        if (!IsWellFormed(client))
        {
            client = headers[HeaderName].ToString();
        }

        if (IsWellFormed(client))
        {
            context.Items[ClientItemKey] = client;
        }

        Stamp(context);
        return id;
    }

    /// <summary>The caller's own well-formed request id, if it sent one.</summary>
    public static string? GetClientId(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Get(context);
        return context.Items.TryGetValue(ClientItemKey, out var value) ? value as string : null;
    }

    /// <summary>Puts both ids on the response (again after a <c>Response.Clear()</c>).</summary>
    internal static void Stamp(HttpContext context)
    {
        var response = context.Response;
        if (response.HasStarted || !context.Items.TryGetValue(ItemKey, out var id))
        {
            return;
        }

        response.Headers[HeaderName] = (string)id!;
        if (context.Items.TryGetValue(ClientItemKey, out var client) && client is string clientId)
        {
            response.Headers[ClientHeaderName] = clientId;
        }
    }
}

/// <summary>Writes <see cref="GatewayError"/> responses.</summary>
internal static class ErrorWriter
{
    public static async Task WriteAsync(HttpContext context, GatewayError error)
    {
        var requestId = RequestIds.Get(context);
        var response = context.Response;
        if (response.HasStarted)
        {
            return;
        }

        response.Clear();
        response.StatusCode = error.StatusCode;
        RequestIds.Stamp(context);
        response.Headers[HeaderNames.CacheControl] = "no-store";
        if (error.RetryAfterSeconds is { } retry)
        {
            response.Headers[HeaderNames.RetryAfter] = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
            response.Headers["retry-after-ms"] = (error.RetryAfterMilliseconds ?? retry * 1000L).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (error.ShouldRetry is { } shouldRetry)
        {
            response.Headers["x-should-retry"] = shouldRetry ? "true" : "false";
        }

        // Clear() dropped them: a limited or counted request keeps its RateLimit headers on the error too.
        Enforcement.RateLimitHeaders.Apply(context);

        var body = new ErrorResponseDto(new ErrorBodyDto(error.Message, error.Type, error.Param, error.Code, requestId));
        response.ContentType = "application/json";
        await response.WriteAsJsonAsync(body, GatewayJson.Context.ErrorResponseDto, contentType: "application/json", context.RequestAborted);
    }

    /// <summary>Same error as an SSE data event, for failures after a stream has started.</summary>
    public static byte[] ToSseEvent(HttpContext context, GatewayError error)
    {
        var body = new ErrorResponseDto(new ErrorBodyDto(error.Message, error.Type, error.Param, error.Code, RequestIds.Get(context)));
        return SseWriter.Frame(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(body, GatewayJson.Context.ErrorResponseDto));
    }
}

/// <summary>
/// Per-request timing for <c>openai-processing-ms</c> and <c>Server-Timing</c>
/// (<c>gateway;dur=…, limits;dur=…, router;dur=…</c> in ms): the router's share is the call until its answer
/// (non-stream) or its first chunk (stream), the gateway's share is everything else, so anyone can see what the
/// gateway adds. <c>limits</c> is the part of the gateway's share spent waiting for the rate-limit decision (one Redis
/// round trip in Redis mode); it is left out when no limit applied to the request.
/// </summary>
internal sealed class ProcessingTimer(long startTimestamp, TimeProvider time)
{
    private long _routerStart;
    private TimeSpan _router;
    private TimeSpan? _limits;

    public static ProcessingTimer Start(TimeProvider time) => new(time.GetTimestamp(), time);

    public TimeSpan Elapsed => time.GetElapsedTime(startTimestamp);

    public long Timestamp() => time.GetTimestamp();

    public void LimitsDecided(long startedAt) => _limits = time.GetElapsedTime(startedAt);

    public void RouterStarted() => _routerStart = time.GetTimestamp();

    public void RouterAnswered() => _router = _routerStart == 0 ? TimeSpan.Zero : time.GetElapsedTime(_routerStart);

    public void Stamp(HttpResponse response)
    {
        if (response.HasStarted)
        {
            return;
        }

        var elapsed = Elapsed;
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        response.Headers["openai-processing-ms"] = ((long)elapsed.TotalMilliseconds).ToString(invariant);
        var gateway = Math.Max(0, (elapsed - _router).TotalMilliseconds);
        response.Headers["Server-Timing"] = _limits is { } limits
            ? string.Create(invariant, $"gateway;dur={gateway:0.###}, limits;dur={limits.TotalMilliseconds:0.###}, router;dur={_router.TotalMilliseconds:0.###}")
            : string.Create(invariant, $"gateway;dur={gateway:0.###}, router;dur={_router.TotalMilliseconds:0.###}");
    }
}

/// <summary>Frames SSE events: <c>data: {json}\n\n</c>, nothing else (no <c>event:</c> lines; see the OpenAI notes).</summary>
internal static class SseWriter
{
    private static readonly byte[] Prefix = "data: "u8.ToArray();
    private static readonly byte[] Suffix = "\n\n"u8.ToArray();

    public static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>200 <c>text/event-stream</c>, no caching or proxy buffering, each write flushed.</summary>
    public static void Start(HttpContext context, ProcessingTimer timer)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        timer.Stamp(response);
        context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
    }

    public static async Task WriteDoneAsync(HttpResponse response, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(Done, cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    public static async Task WriteAsync(HttpResponse response, byte[] json, CancellationToken cancellationToken)
    {
        await response.Body.WriteAsync(Frame(json), cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    public static byte[] Frame(ReadOnlySpan<byte> json)
    {
        var buffer = new byte[Prefix.Length + json.Length + Suffix.Length];
        Prefix.CopyTo(buffer, 0);
        json.CopyTo(buffer.AsSpan(Prefix.Length));
        Suffix.CopyTo(buffer, Prefix.Length + json.Length);
        return buffer;
    }
}
