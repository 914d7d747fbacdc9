using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Cortensor.Portal.Gateway.Errors;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>
/// Reads a JSON body with a hard size limit and turns every client mistake into a 4xx: not declared as UTF-8 JSON
/// (415), too large (413), sent too slowly or cut short (408/400, as the server reported), malformed, repeated keys,
/// or strings that are not Unicode text (400 naming the param).
/// </summary>
internal static class JsonBodyReader
{
    public static async ValueTask<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo, int maxBytes)
        where T : class
    {
        var request = context.Request;
        if (!IsUtf8Json(request.ContentType))
        {
            throw new GatewayException(GatewayError.UnsupportedMediaType(request.ContentType));
        }

        if (request.ContentLength is { } declared && declared > maxBytes)
        {
            throw new GatewayException(GatewayError.BodyTooLarge(maxBytes));
        }

        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(maxBytes + 1, (int)(request.ContentLength ?? 16 * 1024) + 1));
        var length = 0;
        // Kestrel enforces its minimum data rate on the real clock, so the body's pace is measured on that clock too.
        var readStarted = TimeProvider.System.GetTimestamp();
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length > maxBytes)
                    {
                        throw new GatewayException(GatewayError.BodyTooLarge(maxBytes));
                    }

                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, maxBytes + 1));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }

                int read;
                try
                {
                    read = await request.Body.ReadAsync(buffer.AsMemory(length, buffer.Length - length), context.RequestAborted);
                }
                catch (BadHttpRequestException ex) when (context.RequestAborted.IsCancellationRequested)
                {
                    // The connection is gone (reset mid-body): a client that went away, recorded as 499 like one that
                    // disconnects later, not an error to answer.
                    throw new ClientClosedException("The client closed the connection while sending the body.", ex, context.RequestAborted);
                }
                catch (BadHttpRequestException ex)
                {
                    throw new GatewayException(ServerRefusal(context, ex, maxBytes));
                }
                catch (IOException ex)
                {
                    throw StreamAborted(context, ex, length, readStarted);
                }

                if (read == 0)
                {
                    break;
                }

                length += read;
                if (length > maxBytes)
                {
                    throw new GatewayException(GatewayError.BodyTooLarge(maxBytes));
                }
            }

            if (length == 0)
            {
                throw new GatewayException(GatewayError.InvalidJson(null, "The body is empty; send a JSON object."));
            }

            var json = buffer.AsSpan(0, length);
            if (JsonTextCheck.HasInvalidString(json, out var badParam))
            {
                throw new GatewayException(GatewayError.InvalidText(badParam));
            }

            try
            {
                return JsonSerializer.Deserialize(json, typeInfo)
                    ?? throw new GatewayException(GatewayError.InvalidJson(null, "The body must be a JSON object, not null."));
            }
            catch (JsonException ex)
            {
                var param = ParamFromPath(ex.Path);
                var detail = param is null
                    ? "The body is not valid JSON."
                    : $"The value of '{GatewayError.Echo(param)}' has the wrong type, is malformed, or is given more than once.";
                throw new GatewayException(GatewayError.InvalidJson(param, detail));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// <c>application/json</c> or <c>application/*+json</c> (as ASP.NET Core's own JSON binding accepts), with no
    /// charset or a UTF-8 one: the body is parsed as UTF-8, so a body declared in another charset would be misread.
    /// </summary>
    internal static bool IsUtf8Json(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return false;
        }

        // What the OpenAI SDKs and most clients send, without parsing.
        if (contentType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
            || contentType.Equals("application/json; charset=utf-8", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        if (!MediaTypeHeaderValue.TryParse(contentType, out var mediaType)
            || !mediaType.Type.Equals("application", StringComparison.OrdinalIgnoreCase)
            || !(mediaType.SubType.Equals("json", StringComparison.OrdinalIgnoreCase) || mediaType.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
        {
            return false;
        }

        var charset = HeaderUtilities.RemoveQuotes(mediaType.Charset);
        return charset.Length == 0
            || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase)
            || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The server's own refusals while the body is read (slower than its minimum data rate: 408; over its body size
    /// limit: 413; cut short or badly framed: 400) are the client's doing: 4xx errors, not unhandled exceptions
    /// (500, logged as errors).
    /// </summary>
    private static GatewayError ServerRefusal(HttpContext context, BadHttpRequestException refusal, int maxBytes) => refusal.StatusCode switch
    {
        StatusCodes.Status408RequestTimeout => GatewayError.RequestBodyTimeout(),
        StatusCodes.Status413PayloadTooLarge => GatewayError.BodyTooLarge(
            Math.Min(maxBytes, context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize ?? long.MaxValue)),
        _ => GatewayError.UnreadableBody(refusal.StatusCode),
    };

    /// <summary>
    /// HTTP/2 (and HTTP/3) end a body read with an <see cref="IOException"/>, not a
    /// <see cref="BadHttpRequestException"/>, when the stream or its connection is aborted: the client reset the
    /// stream or closed the connection (499, like a client that leaves later), or Kestrel dropped the whole connection
    /// because bodies arrived slower than its minimum data rate. The exception does not say which, and no answer can
    /// reach the client either way, so the records decide by the body's own pace: below the rate after the grace
    /// period is 408, as over HTTP/1.1. The rate is the server-wide limit: HTTP/2 has no per-request one (its
    /// feature throws). A connection the server drops at shutdown is also recorded as 499.
    /// </summary>
    private static Exception StreamAborted(HttpContext context, IOException abort, int bytesRead, long readStarted)
    {
        if (!HttpProtocol.IsHttp10(context.Request.Protocol) && !HttpProtocol.IsHttp11(context.Request.Protocol)
            && context.RequestServices.GetService<IOptions<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>>()?.Value.Limits.MinRequestBodyDataRate is { } minimum)
        {
            var elapsed = TimeProvider.System.GetElapsedTime(readStarted);
            if (elapsed >= minimum.GracePeriod && bytesRead < minimum.BytesPerSecond * elapsed.TotalSeconds)
            {
                return new GatewayException(GatewayError.RequestBodyTimeout());
            }
        }

        return new ClientClosedException("The client reset the stream or closed the connection while sending the body.", abort, context.RequestAborted);
    }

    /// <summary><c>$.messages[0].role</c> → <c>messages[0].role</c>; <c>$</c> → null.</summary>
    internal static string? ParamFromPath(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$")
        {
            return null;
        }

        return path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
    }
}
