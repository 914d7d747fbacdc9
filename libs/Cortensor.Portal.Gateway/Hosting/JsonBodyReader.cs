using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Cortensor.Portal.Gateway.Errors;
using Microsoft.AspNetCore.Http;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>Reads a JSON body with a hard size limit and turns parse failures into 400s that name the param.</summary>
internal static class JsonBodyReader
{
    public static async ValueTask<T> ReadAsync<T>(HttpContext context, JsonTypeInfo<T> typeInfo, int maxBytes)
        where T : class
    {
        var request = context.Request;
        if (request.ContentLength is { } declared && declared > maxBytes)
        {
            throw new GatewayException(GatewayError.BodyTooLarge(maxBytes));
        }

        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(maxBytes + 1, (int)(request.ContentLength ?? 16 * 1024) + 1));
        var length = 0;
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

                var read = await request.Body.ReadAsync(buffer.AsMemory(length, buffer.Length - length), context.RequestAborted);
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

            try
            {
                return JsonSerializer.Deserialize(buffer.AsSpan(0, length), typeInfo)
                    ?? throw new GatewayException(GatewayError.InvalidJson(null, "The body must be a JSON object, not null."));
            }
            catch (JsonException ex)
            {
                var param = ParamFromPath(ex.Path);
                var detail = param is null
                    ? "The body is not valid JSON."
                    : $"The value of '{param}' has the wrong type or is malformed.";
                throw new GatewayException(GatewayError.InvalidJson(param, detail));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
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
