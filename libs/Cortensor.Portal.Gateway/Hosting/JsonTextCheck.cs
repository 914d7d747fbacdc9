using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>
/// Finds a JSON string (value or property name) that is not valid Unicode text: raw bytes that are not UTF-8, or a
/// <c>\uD800</c>-style escape for half of a surrogate pair. The reader accepts both and the failure only shows when
/// the text is read, which for <see cref="JsonElement"/> fields happens deep in validation (a 500); checking here
/// turns it into a 400 naming the param.
/// </summary>
internal static class JsonTextCheck
{
    /// <summary>The deserializer's default depth limit; deeper documents fail there with a clear error.</summary>
    private const int MaxDepth = 64;

    private static readonly SearchValues<byte> Hex = SearchValues.Create("0123456789abcdefABCDEF"u8);

    /// <summary>The second hex digit of a surrogate code unit: <c>D8</c>–<c>DF</c>.</summary>
    private static readonly SearchValues<byte> SurrogateSecondDigit = SearchValues.Create("89abcdefABCDEF"u8);

    /// <summary>
    /// True when some string is invalid; <paramref name="param"/> is its path (<c>messages[0].content</c>), or null
    /// at the root. A body that is not well-formed JSON is left to the deserializer, which names the place.
    /// </summary>
    public static bool HasInvalidString(ReadOnlySpan<byte> json, out string? param)
    {
        param = null;
        return NeedsWalk(json) && Walk(json, out param);
    }

    /// <summary>
    /// False when no string can be invalid: every byte is UTF-8 and no <c>\u</c> escape names a surrogate half
    /// (<c>\uD800</c>–<c>\uDFFF</c>). Clients escape other characters all the time (the OpenAI .NET SDK escapes
    /// non-ASCII and <c>'&lt;&gt;&amp;+</c>, Python's <c>ensure_ascii</c> all non-ASCII), and those escapes are always
    /// valid, so only a possible surrogate escape costs a walk. An escaped backslash followed by <c>ud8…</c> also
    /// matches; the walk then finds it valid.
    /// </summary>
    internal static bool NeedsWalk(ReadOnlySpan<byte> json)
    {
        if (!Utf8.IsValid(json))
        {
            return true;
        }

        for (var at = json.IndexOf("\\u"u8); at >= 0; at = NextEscape(json, at))
        {
            if (at + 3 < json.Length && (json[at + 2] | 0x20) == 'd' && SurrogateSecondDigit.Contains(json[at + 3]))
            {
                return true;
            }
        }

        return false;
    }

    private static int NextEscape(ReadOnlySpan<byte> json, int previous)
    {
        var next = json[(previous + 2)..].IndexOf("\\u"u8);
        return next < 0 ? -1 : previous + 2 + next;
    }

    private static bool Walk(ReadOnlySpan<byte> json, out string? param)
    {
        param = null;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = MaxDepth });
        Span<Frame> frames = stackalloc Frame[MaxDepth + 1];
        var depth = 0;
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        if (!IsValidText(reader.ValueSpan, reader.ValueIsEscaped))
                        {
                            param = Path(json, frames[..depth], includeLast: false);
                            return true;
                        }

                        frames[depth - 1].NameStart = (int)reader.TokenStartIndex + 1;
                        frames[depth - 1].NameLength = reader.ValueSpan.Length;
                        break;
                    case JsonTokenType.String:
                        if (!IsValidText(reader.ValueSpan, reader.ValueIsEscaped))
                        {
                            param = Path(json, frames[..depth], includeLast: true);
                            return true;
                        }

                        Advance(frames[..depth]);
                        break;
                    case JsonTokenType.StartObject or JsonTokenType.StartArray:
                        frames[depth++] = new Frame { IsArray = reader.TokenType == JsonTokenType.StartArray };
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        depth--;
                        Advance(frames[..depth]);
                        break;
                    default:
                        Advance(frames[..depth]);
                        break;
                }
            }
        }
        catch (JsonException)
        {
            // Malformed JSON: the deserializer reports it with its own path.
        }

        return false;
    }

    private static void Advance(Span<Frame> frames)
    {
        if (frames.Length > 0 && frames[^1].IsArray)
        {
            frames[^1].Index++;
        }
    }

    /// <summary>
    /// Raw bytes must be UTF-8 and every <c>\uXXXX</c> escape must decode to a scalar value: a high surrogate
    /// directly followed by an escaped low one, never a lone half. The reader has already checked escape syntax.
    /// </summary>
    internal static bool IsValidText(ReadOnlySpan<byte> raw, bool escaped)
    {
        if (!Utf8.IsValid(raw))
        {
            return false;
        }

        if (!escaped)
        {
            return true;
        }

        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] != (byte)'\\')
            {
                continue;
            }

            i++; // the escaped character
            if (raw[i] != (byte)'u')
            {
                continue;
            }

            var unit = CodeUnit(raw, i + 1);
            i += 4;
            if (char.IsLowSurrogate(unit))
            {
                return false;
            }

            if (char.IsHighSurrogate(unit))
            {
                if (i + 6 >= raw.Length || raw[i + 1] != (byte)'\\' || raw[i + 2] != (byte)'u' || !char.IsLowSurrogate(CodeUnit(raw, i + 3)))
                {
                    return false;
                }

                i += 6;
            }
        }

        return true;
    }

    private static char CodeUnit(ReadOnlySpan<byte> raw, int start)
    {
        var hex = raw.Slice(start, 4);
        if (hex.IndexOfAnyExcept(Hex) >= 0)
        {
            return '\0'; // not reachable after the reader's own check; never a surrogate
        }

        var value = 0;
        foreach (var b in hex)
        {
            value = (value << 4) | (b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10);
        }

        return (char)value;
    }

    /// <summary><c>messages[0].content</c> for the value the frames point at; without the last step for a bad name.</summary>
    private static string? Path(ReadOnlySpan<byte> json, ReadOnlySpan<Frame> frames, bool includeLast)
    {
        var count = includeLast ? frames.Length : frames.Length - 1;
        var path = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            var frame = frames[i];
            if (frame.IsArray)
            {
                path.Append('[').Append(frame.Index).Append(']');
            }
            else
            {
                if (path.Length > 0)
                {
                    path.Append('.');
                }

                path.Append(Encoding.UTF8.GetString(json.Slice(frame.NameStart, frame.NameLength)));
            }
        }

        return path.Length == 0 ? null : path.ToString();
    }

    private struct Frame
    {
        public bool IsArray;
        public int Index;
        public int NameStart;
        public int NameLength;
    }
}
