using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>HTTP plumbing shared by the router protocol clients: requests, error mapping, tolerant response parsing.</summary>
internal static partial class RouterHttp
{
    /// <summary>Longest <see cref="RouterException.RouterMessage"/> kept.</summary>
    public const int MaxRouterMessageLength = 300;

    /// <summary>How much of an error body is read to find a message.</summary>
    public const int MaxErrorBodyBytes = 16 * 1024;

    /// <summary>Largest non-stream completion body accepted.</summary>
    public const int MaxCompletionBodyBytes = 8 * 1024 * 1024;

    private const string Redacted = "[redacted]";
    private const string PromptPlaceholder = "[prompt]";

    /// <summary>
    /// A POST with a JSON body. The body is a byte array (with Content-Length), not a chunked stream: Flask routers behind
    /// the development server do not read chunked request bodies.
    /// </summary>
    public static HttpRequestMessage CreatePost(Uri url, string? apiKey, byte[] jsonBody, bool stream)
    {
        var content = new ByteArrayContent(jsonBody);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var message = new HttpRequestMessage(HttpMethod.Post, url) { Content = content };
        if (!string.IsNullOrEmpty(apiKey))
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        message.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(stream ? "text/event-stream" : "application/json"));
        return message;
    }

    /// <summary><paramref name="baseUrl"/> with <paramref name="relativePath"/> appended (exactly one slash between them).</summary>
    public static Uri Append(Uri baseUrl, string relativePath)
    {
        var left = baseUrl.GetLeftPart(UriPartial.Path).TrimEnd('/');
        return new Uri(left + "/" + relativePath.TrimStart('/'), UriKind.Absolute);
    }

    public static RouterFailureKind MapStatus(HttpStatusCode status) => (int)status switch
    {
        401 or 403 => RouterFailureKind.Unauthorized,
        404 => RouterFailureKind.NotFound,
        408 or 504 or 524 => RouterFailureKind.Timeout,
        429 or 502 or 503 or 521 or 522 or 523 => RouterFailureKind.Unavailable,
        _ => RouterFailureKind.BadResponse,
    };

    /// <summary>Builds the exception for a non-success answer; reads (a bounded part of) the error body for a message.</summary>
    public static async Task<RouterException> CreateStatusErrorAsync(
        HttpResponseMessage response, RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken)
    {
        var status = (int)response.StatusCode;
        string? body = null;
        try
        {
            using var read = await ReadBoundedAsync(response.Content, MaxErrorBodyBytes, cancellationToken);
            body = Encoding.UTF8.GetString(read.Span);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            // The status is what matters; a body we cannot read just means no router message.
        }

        var kind = MapStatus(response.StatusCode);
        return new RouterException(kind, $"Router {target} answered HTTP {status} on {Describe(response)}.", status)
        {
            RouterMessage = ExtractErrorMessage(body, target.ApiKey, request.Prompt),
        };
    }

    /// <summary>Reads a non-stream completion from a success response.</summary>
    public static async Task<RouterCompletion> ReadCompletionAsync(
        HttpResponseMessage response, RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken)
    {
        using var body = await ReadBoundedAsync(response.Content, MaxCompletionBodyBytes, cancellationToken);
        if (body.Truncated)
        {
            throw new RouterException(RouterFailureKind.BadResponse, $"Router {target} sent a completion body larger than {MaxCompletionBodyBytes} bytes.", (int)response.StatusCode);
        }

        if (IsBlank(body.Span))
        {
            // Routers answer some timeouts with an empty 200 (installer PR #167): no answer, not a broken one.
            throw new RouterException(RouterFailureKind.EmptyAnswer, $"Router {target} answered HTTP {(int)response.StatusCode} with an empty body.", (int)response.StatusCode);
        }

        JsonDocument document;
        try
        {
            // Parsed in place: the document is disposed before the pooled body goes back.
            document = JsonDocument.Parse(body.Memory);
        }
        catch (JsonException ex)
        {
            throw new RouterException(RouterFailureKind.BadResponse, $"Router {target} answered HTTP {(int)response.StatusCode} with a body that is not JSON.", (int)response.StatusCode, ex)
            {
                RouterMessage = ExtractErrorMessage(Encoding.UTF8.GetString(body.Span[..Math.Min(body.Length, MaxErrorBodyBytes)]), target.ApiKey, request.Prompt),
            };
        }

        using (document)
        {
            if (TryReadCompletion(document.RootElement, out var completion))
            {
                if (completion.Text.Length == 0 && completion.FinishReason is null)
                {
                    throw new RouterException(RouterFailureKind.EmptyAnswer, $"Router {target} answered HTTP {(int)response.StatusCode} with no text and no finish reason.", (int)response.StatusCode);
                }

                return completion;
            }

            throw new RouterException(RouterFailureKind.BadResponse, $"Router {target} answered HTTP {(int)response.StatusCode} without completion text.", (int)response.StatusCode)
            {
                RouterMessage = document.RootElement.ValueKind == JsonValueKind.Object ? Shorten(MessageFromJson(document.RootElement), target.ApiKey, request.Prompt) : null,
            };
        }
    }

    private static bool IsBlank(ReadOnlySpan<byte> body) => body.TrimStart(" \t\r\n"u8).IsEmpty;

    /// <summary>
    /// Text: <c>choices[0].text</c>, then <c>choices[0].message.content</c>, then top-level <c>text</c>, <c>output</c>,
    /// <c>result</c>, <c>response</c>, <c>completion</c>. Also <c>finish_reason</c>, <c>usage</c> and <c>task_id</c>.
    /// </summary>
    public static bool TryReadCompletion(JsonElement root, out RouterCompletion completion)
    {
        completion = null!;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return false;
        }

        string? text = null;
        string? finishReason = null;
        if (TryGetFirstChoice(root, out var choice))
        {
            if (choice.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String)
            {
                text = ReadString(t);
            }
            else if (choice.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.Object
                && message.TryGetProperty("content", out var content))
            {
                // A chat answer with only tool calls has content null: that is an empty text, not a broken answer.
                text = content.ValueKind switch
                {
                    JsonValueKind.String => ReadString(content),
                    JsonValueKind.Null => "",
                    _ => null,
                };
            }

            finishReason = GetString(choice, "finish_reason");
        }

        if (text is null)
        {
            foreach (var name in (ReadOnlySpan<string>)["text", "output", "result", "response", "completion"])
            {
                if (root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String)
                {
                    text = ReadString(value);
                    break;
                }
            }
        }

        if (text is null)
        {
            return false;
        }

        completion = new RouterCompletion
        {
            Text = text,
            FinishReason = finishReason ?? GetString(root, "finish_reason"),
            Usage = ReadUsage(root),
            TaskId = GetScalar(root, "task_id") ?? GetScalar(root, "taskId"),
        };
        return true;
    }

    public static bool TryGetFirstChoice(JsonElement root, out JsonElement choice)
    {
        if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array
            && choices.GetArrayLength() > 0 && choices[0].ValueKind == JsonValueKind.Object)
        {
            choice = choices[0];
            return true;
        }

        choice = default;
        return false;
    }

    /// <summary>
    /// <c>usage{prompt_tokens, completion_tokens}</c>; null when absent, null, or without either count. Counts are
    /// never negative and their sum fits an <see cref="int"/> (the gateway adds them up and settles rate limits with
    /// the sum), whatever numbers the router sent.
    /// </summary>
    public static RouterUsage? ReadUsage(JsonElement root)
    {
        if (!root.TryGetProperty("usage", out var usage) || usage.ValueKind != JsonValueKind.Object)
        {
            return null;
        }

        var prompt = GetCount(usage, "prompt_tokens");
        var completion = GetCount(usage, "completion_tokens");
        if (prompt is null && completion is null)
        {
            return null;
        }

        var promptTokens = prompt ?? 0;
        return new RouterUsage(promptTokens, Math.Min(completion ?? 0, int.MaxValue - promptTokens));
    }

    /// <summary>
    /// A JSON string's text. Routers may send invalid UTF-8 or a lone surrogate escape (a model that split an emoji
    /// across chunks), which <see cref="JsonElement.GetString"/> refuses with an exception; such text is decoded
    /// leniently instead, each bad sequence becoming U+FFFD.
    /// </summary>
    public static string ReadString(JsonElement value)
    {
        try
        {
            return value.GetString() ?? "";
        }
        catch (InvalidOperationException)
        {
            return LenientUnescape(JsonMarshal.GetRawUtf8Value(value));
        }
    }

    /// <summary>The raw JSON of a value as text; invalid UTF-8 in it becomes U+FFFD (<see cref="JsonElement.GetRawText"/> would throw).</summary>
    public static string RawText(JsonElement value) => Encoding.UTF8.GetString(JsonMarshal.GetRawUtf8Value(value));

    /// <summary>Decodes a raw JSON string token (quotes included) without failing: bad UTF-8 and lone surrogates become U+FFFD.</summary>
    private static string LenientUnescape(ReadOnlySpan<byte> token)
    {
        var raw = token.Length >= 2 && token[0] == (byte)'"' && token[^1] == (byte)'"' ? token[1..^1] : token;
        var text = new StringBuilder(raw.Length);
        var run = 0; // start of the bytes not yet decoded
        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] != (byte)'\\' || i + 1 >= raw.Length)
            {
                continue;
            }

            text.Append(Encoding.UTF8.GetString(raw[run..i]));
            var escape = raw[i + 1];
            i++;
            if (escape == (byte)'u' && TryHex(raw, i + 1, out var unit))
            {
                i += 4;
                if (char.IsHighSurrogate(unit) && i + 6 < raw.Length && raw[i + 1] == (byte)'\\' && raw[i + 2] == (byte)'u'
                    && TryHex(raw, i + 3, out var low) && char.IsLowSurrogate(low))
                {
                    text.Append(unit).Append(low);
                    i += 6;
                }
                else
                {
                    text.Append(char.IsSurrogate(unit) ? '\uFFFD' : unit);
                }
            }
            else
            {
                text.Append(escape switch
                {
                    (byte)'n' => '\n',
                    (byte)'r' => '\r',
                    (byte)'t' => '\t',
                    (byte)'b' => '\b',
                    (byte)'f' => '\f',
                    (byte)'"' or (byte)'\\' or (byte)'/' => (char)escape,
                    _ => '\uFFFD',
                });
            }

            run = i + 1;
        }

        return text.Append(Encoding.UTF8.GetString(raw[run..])).ToString();

        static bool TryHex(ReadOnlySpan<byte> bytes, int at, out char value)
        {
            if (at + 4 <= bytes.Length
                && ushort.TryParse(bytes.Slice(at, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var number))
            {
                value = (char)number;
                return true;
            }

            value = default;
            return false;
        }
    }

    public static string? GetString(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? ReadString(value) : null;

    /// <summary>A string or a number, as text (task ids come as either).</summary>
    public static string? GetScalar(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.String => ReadString(value),
            JsonValueKind.Number => value.GetRawText(),
            _ => null,
        };
    }

    public static bool IsJson(HttpContent? content)
    {
        var mediaType = content?.Headers.ContentType?.MediaType;
        return mediaType is not null
            && (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>
    /// Maps a transport-level failure to a <see cref="RouterException"/>; null for exceptions that are not ours to map
    /// (including cancellation by the caller, which propagates as it is).
    /// </summary>
    public static RouterException? TranslateTransportFailure(Exception exception, RouterTarget target, RouterCompletionRequest request, CancellationToken callerToken) => exception switch
    {
        RouterException => null,
        OperationCanceledException when callerToken.IsCancellationRequested => null,
        OperationCanceledException => new RouterException(RouterFailureKind.Timeout, $"Router {target} did not finish within {request.HttpTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s.", null, exception),
        TimeoutRejectedException => new RouterException(RouterFailureKind.Timeout, $"Router {target} timed out in the resilience pipeline.", null, exception),
        BrokenCircuitException => new RouterException(RouterFailureKind.Unavailable, $"Router {target} is not called: its circuit breaker is open.", null, exception),
        ExecutionRejectedException => new RouterException(RouterFailureKind.Unavailable, $"Router {target} call was rejected by the resilience pipeline.", null, exception),
        HttpRequestException { StatusCode: { } status } => new RouterException(MapStatus(status), $"Router {target} failed with HTTP {(int)status}.", (int)status, exception),
        HttpRequestException => new RouterException(RouterFailureKind.Unavailable, $"Router {target} could not be reached.", null, exception),
        IOException => new RouterException(RouterFailureKind.Unavailable, $"The connection to router {target} failed while reading the answer.", null, exception),
        _ => null,
    };

    /// <summary>
    /// A short message from an error body: JSON <c>{"error":{"message"}}</c>, <c>{"error":"…"}</c>, <c>{"message"}</c>,
    /// <c>{"detail"}</c>; an HTML title or its text; or plain text. The API key and the prompt are redacted.
    /// </summary>
    public static string? ExtractErrorMessage(string? body, string? apiKey, string? prompt)
    {
        if (string.IsNullOrWhiteSpace(body))
        {
            return null;
        }

        var trimmed = body.Trim();
        string? text = null;
        if (trimmed[0] is '{' or '[' or '"')
        {
            try
            {
                using var document = JsonDocument.Parse(trimmed);
                text = document.RootElement.ValueKind switch
                {
                    JsonValueKind.Object => MessageFromJson(document.RootElement),
                    JsonValueKind.String => ReadString(document.RootElement),
                    _ => null,
                };
            }
            catch (JsonException)
            {
                // Not JSON after all: fall through to plain text.
            }
        }

        if (text is null && trimmed[0] == '<')
        {
            var title = HtmlTitle().Match(trimmed);
            text = WebUtility.HtmlDecode(title.Success ? title.Groups[1].Value : HtmlTag().Replace(trimmed, " "));
        }

        return Shorten(text ?? trimmed, apiKey, prompt);
    }

    private static string? MessageFromJson(JsonElement obj)
    {
        if (obj.TryGetProperty("error", out var error))
        {
            if (error.ValueKind == JsonValueKind.String)
            {
                return ReadString(error);
            }

            if (error.ValueKind == JsonValueKind.Object
                && (GetString(error, "message") ?? GetString(error, "detail")) is { } nested)
            {
                return nested;
            }
        }

        return GetString(obj, "message") ?? GetString(obj, "detail") ?? GetString(obj, "error_description") ?? RawText(obj);
    }

    private static string? Shorten(string? text, string? apiKey, string? prompt)
    {
        if (text is null)
        {
            return null;
        }

        if (!string.IsNullOrEmpty(apiKey))
        {
            text = text.Replace(apiKey, Redacted, StringComparison.Ordinal);
        }

        if (prompt is { Length: >= 16 })
        {
            text = text.Replace(prompt, PromptPlaceholder, StringComparison.Ordinal);
        }

        text = Whitespace().Replace(text, " ").Trim();
        if (text.Length > MaxRouterMessageLength)
        {
            text = string.Concat(text.AsSpan(0, MaxRouterMessageLength - 1), "…");
        }

        return text.Length == 0 ? null : text;
    }

    private static string Describe(HttpResponseMessage response) =>
        response.RequestMessage?.RequestUri is { } uri ? uri.AbsolutePath : "the router";

    private static int? GetCount(JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.Number)
        {
            return null;
        }

        // Out of int range, fractional or beyond double (1e400): clamped to 0..int.MaxValue, never an exception.
        if (value.TryGetInt32(out var count))
        {
            return Math.Max(0, count);
        }

        if (value.TryGetDouble(out var number))
        {
            return (int)Math.Clamp(Math.Round(number), 0, int.MaxValue);
        }

        return value.GetRawText().StartsWith('-') ? 0 : int.MaxValue; // beyond double either way
    }

    /// <summary>
    /// Reads at most <paramref name="maxBytes"/> of the body into a pooled buffer (sized from Content-Length when the
    /// router sends one), so a completion costs no per-call buffers. The caller disposes the result.
    /// </summary>
    private static async Task<PooledBody> ReadBoundedAsync(HttpContent content, int maxBytes, CancellationToken cancellationToken)
    {
        // One byte more than expected, so that the end of the body is seen without growing the buffer.
        var expected = content.Headers.ContentLength is { } length and >= 0 ? (int)Math.Min(length + 1, (long)maxBytes + 1) : 4096;
        var array = ArrayPool<byte>.Shared.Rent(Math.Max(expected, 256));
        var count = 0;
        try
        {
            var stream = await content.ReadAsStreamAsync(cancellationToken);
            await using (stream)
            {
                while (true)
                {
                    if (count == array.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent(array.Length * 2);
                        array.AsSpan(0, count).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(array);
                        array = larger;
                    }

                    var read = await stream.ReadAsync(array.AsMemory(count, Math.Min(array.Length - count, maxBytes + 1 - count)), cancellationToken);
                    if (read == 0)
                    {
                        return new PooledBody(array, count, Truncated: false);
                    }

                    count += read;
                    if (count > maxBytes)
                    {
                        return new PooledBody(array, maxBytes, Truncated: true);
                    }
                }
            }
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(array);
            throw;
        }
    }

    /// <summary>A body read into a buffer rented from <see cref="ArrayPool{T}.Shared"/>; disposing returns it.</summary>
    private readonly record struct PooledBody(byte[] Array, int Length, bool Truncated) : IDisposable
    {
        public ReadOnlyMemory<byte> Memory => Array.AsMemory(0, Length);

        public ReadOnlySpan<byte> Span => Array.AsSpan(0, Length);

        public void Dispose() => ArrayPool<byte>.Shared.Return(Array);
    }

    [GeneratedRegex(@"<title[^>]*>(.*?)</title>", RegexOptions.IgnoreCase | RegexOptions.Singleline | RegexOptions.CultureInvariant)]
    private static partial Regex HtmlTitle();

    [GeneratedRegex(@"<[^>]*>", RegexOptions.CultureInvariant)]
    private static partial Regex HtmlTag();

    [GeneratedRegex(@"\s+", RegexOptions.CultureInvariant)]
    private static partial Regex Whitespace();
}
