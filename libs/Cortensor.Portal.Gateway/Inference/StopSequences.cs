using System.Text;

namespace Cortensor.Portal.Gateway.Inference;

/// <summary>
/// OpenAI's <c>stop</c>, enforced by the gateway: Cortensor routers put sampling parameters on chain as a
/// <c>uint256[]</c> (installer PR #133), so stop strings probably never reach the model. The output is cut before the
/// first occurrence of any stop string (the stop string itself is not returned, as with OpenAI).
/// </summary>
/// <remarks>
/// Streaming: <see cref="Push"/> returns the text that can be sent now. It holds back only the longest tail that could
/// still be the start of a stop string (at most the longest stop string's length minus one characters), so a stop
/// string split across router chunks is still cut and no other text waits longer than it must.
/// </remarks>
internal sealed class StopSequences
{
    private readonly string[] _stops;
    private readonly StringBuilder _pending = new();

    private StopSequences(string[] stops) => _stops = stops;

    /// <summary>True once a stop string was found: the rest of the router's output is dropped (and its call can end).</summary>
    public bool IsStopped { get; private set; }

    /// <summary>A filter for <paramref name="stops"/>; null when there is nothing to enforce (no stop, or only empty strings).</summary>
    public static StopSequences? Create(IReadOnlyList<string>? stops)
    {
        var usable = stops?.Where(static s => s.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        return usable is { Length: > 0 } ? new StopSequences(usable) : null;
    }

    /// <summary>Non-stream: <paramref name="text"/> cut before the first stop string; <paramref name="stopped"/> says whether one was found.</summary>
    public static string Cut(string text, IReadOnlyList<string>? stops, out bool stopped)
    {
        if (Create(stops) is not { } filter)
        {
            stopped = false;
            return text;
        }

        var kept = filter.Push(text) + filter.Flush();
        stopped = filter.IsStopped;
        return kept;
    }

    /// <summary>Adds router text; returns what may be sent now (empty once stopped).</summary>
    public string Push(string text)
    {
        if (IsStopped || text.Length == 0)
        {
            return "";
        }

        var buffered = _pending.Length == 0 ? text : _pending.Append(text).ToString();
        _pending.Clear();
        var cut = FirstStop(buffered);
        if (cut >= 0)
        {
            IsStopped = true;
            return buffered[..cut];
        }

        var held = PartialTail(buffered);
        _pending.Append(buffered, buffered.Length - held, held);
        return buffered[..^held];
    }

    /// <summary>The end of the output: the held-back tail was no stop string after all.</summary>
    public string Flush()
    {
        var rest = IsStopped ? "" : _pending.ToString();
        _pending.Clear();
        return rest;
    }

    private int FirstStop(string text)
    {
        var first = -1;
        foreach (var stop in _stops)
        {
            var at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
            }
        }

        return first;
    }

    /// <summary>The length of the longest tail of <paramref name="text"/> that is a proper prefix of a stop string.</summary>
    private int PartialTail(string text)
    {
        var longest = 0;
        foreach (var stop in _stops)
        {
            for (var length = Math.Min(stop.Length - 1, text.Length); length > longest; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    longest = length;
                    break;
                }
            }
        }

        return longest;
    }
}
