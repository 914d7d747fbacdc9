using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.OpenAI;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>Request id handling: keep a well-formed incoming <c>X-Request-Id</c>, else mint <c>req_…</c>.</summary>
public static class RequestIds
{
    public const string HeaderName = "X-Request-Id";

    private const string ItemKey = "Cortensor.Portal.RequestId";

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

        var incoming = context.Request.Headers[HeaderName].ToString();
        id = IsWellFormed(incoming) ? incoming : Mint();
        context.Items[ItemKey] = id;
        if (!context.Response.HasStarted)
        {
            context.Response.Headers[HeaderName] = id;
        }

        return id;
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
        response.Headers[RequestIds.HeaderName] = requestId;
        response.Headers[HeaderNames.CacheControl] = "no-store";
        if (error.RetryAfterSeconds is { } retry)
        {
            response.Headers[HeaderNames.RetryAfter] = retry.ToString(System.Globalization.CultureInfo.InvariantCulture);
            response.Headers["retry-after-ms"] = (retry * 1000).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

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

/// <summary>Per-request timing for <c>openai-processing-ms</c>.</summary>
internal readonly struct ProcessingTimer(long startTimestamp, TimeProvider time)
{
    public static ProcessingTimer Start(TimeProvider time) => new(time.GetTimestamp(), time);

    public TimeSpan Elapsed => time.GetElapsedTime(startTimestamp);

    public void Stamp(HttpResponse response)
    {
        if (!response.HasStarted)
        {
            response.Headers["openai-processing-ms"] = ((long)Elapsed.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
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
