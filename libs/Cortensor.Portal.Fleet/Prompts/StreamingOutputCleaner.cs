using System.Text;

namespace Cortensor.Portal.Fleet.Prompts;

/// <summary>
/// Applies the <see cref="OutputCleaner"/> rules to a streamed completion, one delta at a time. Use one instance per stream.
/// </summary>
/// <remarks>
/// <see cref="Push"/> returns what is safe to show now. It holds back a short tail that could still turn into a special
/// token or a turn marker (for example <c>&lt;|im</c> or <c>\nUse</c>), whitespace that may turn out to be trailing,
/// and everything inside a think block or a non-final harmony channel. For any split of a text into deltas, the
/// concatenation of every <see cref="Push"/> result and <see cref="Flush"/> equals <see cref="OutputCleaner.Clean"/> of the text.
/// Not thread-safe.
/// </remarks>
public sealed class StreamingOutputCleaner
{
    private const string AssistantWord = "assistant";
    private const int MaxChannelNameLength = 64;

    private static readonly string[] TurnMarkers =
    [
        "\nUser:", "\nHuman:", "\nAssistant:", "<|im_start|>", "<|start_header_id|>", "<start_of_turn>",
        "<|user|>", "<|system|>", "<|USER|>", "<|SYSTEM|>",
    ];

    private static readonly Marker[] ThinkMarkers = [new("</think>", MarkerKind.ThinkClose)];

    private static readonly Marker[] DroppedChannelMarkers =
        [new("<|channel|>", MarkerKind.ChannelOpen), new("<|start|>", MarkerKind.StartTurn)];

    private static readonly Marker[] ChannelHeaderMarkers = [new("<|message|>", MarkerKind.ChannelMessage)];

    private readonly Marker[] _normalMarkers;
    private readonly StringBuilder _heldWhitespace = new();
    private readonly StringBuilder _channelName = new();
    private string _pending = "";
    private Mode _mode = Mode.Text;
    private bool _emittedAny;
    private bool _flushed;

    /// <summary>The markers of each format, built once: every stream of a format shares them.</summary>
    private static readonly Dictionary<PromptFormat, Marker[]> MarkersByFormat =
        Enum.GetValues<PromptFormat>().ToDictionary(static f => f, BuildMarkers);

    /// <summary>The first character of every marker of every format: text without any of them has nothing to clean but its ends.</summary>
    private static readonly System.Buffers.SearchValues<char> MarkerStarts =
        System.Buffers.SearchValues.Create([.. MarkersByFormat.Values.SelectMany(static m => m).Select(static m => m.Token[0]).Distinct()]);

    /// <summary>Creates a cleaner for a completion of a prompt built in <paramref name="format"/>.</summary>
    public StreamingOutputCleaner(PromptFormat format)
    {
        Format = format;
        _normalMarkers = MarkersByFormat.TryGetValue(format, out var markers) ? markers : BuildMarkers(format);
    }

    /// <summary>The format the prompt was built in.</summary>
    public PromptFormat Format { get; }

    /// <summary>True once the answer has ended (a turn marker or the format's end-of-turn token was seen); later pushes return "".</summary>
    public bool IsStopped => _mode == Mode.Stopped;

    /// <summary>Adds <paramref name="delta"/> and returns the cleaned text that is safe to emit now (often "").</summary>
    /// <exception cref="InvalidOperationException"><see cref="Flush"/> was already called.</exception>
    public string Push(string delta)
    {
        ArgumentNullException.ThrowIfNull(delta);
        if (_flushed)
        {
            throw new InvalidOperationException("The stream was already flushed.");
        }

        if (_mode == Mode.Stopped || delta.Length == 0)
        {
            return "";
        }

        _pending = string.Concat(_pending, delta);
        var output = new StringBuilder();
        Process(output, final: false);
        return output.ToString();
    }

    /// <summary>Ends the stream and returns the cleaned remainder. Call once; held-back trailing whitespace is dropped.</summary>
    public string Flush()
    {
        if (_flushed)
        {
            return "";
        }

        var output = new StringBuilder();
        if (_mode != Mode.Stopped)
        {
            Process(output, final: true);
        }

        _flushed = true;
        _pending = "";
        _heldWhitespace.Clear();
        return output.ToString();
    }

    /// <summary>True when <paramref name="text"/> holds no character that could start a marker (so cleaning it only trims it).</summary>
    internal static bool MayHoldMarker(ReadOnlySpan<char> text) => text.ContainsAny(MarkerStarts);

    private static Marker[] BuildMarkers(PromptFormat format)
    {
        var stops = EndOfTurnTokens(format);
        var markers = new List<Marker>();
        markers.AddRange(stops.Select(t => new Marker(t, MarkerKind.Stop)));
        markers.AddRange(TurnMarkers.Select(t => new Marker(t, MarkerKind.Stop)));
        markers.Add(new Marker("<think>", MarkerKind.ThinkOpen));
        markers.Add(new Marker("<|channel|>", MarkerKind.ChannelOpen));
        markers.Add(new Marker("<|start|>", MarkerKind.StartTurn));
        var handled = new HashSet<string>(markers.Select(m => m.Token), StringComparer.Ordinal);
        markers.AddRange(SpecialTokens.All.Where(t => !handled.Contains(t)).Select(t => new Marker(t, MarkerKind.Remove)));
        return [.. markers];
    }

    private static string[] EndOfTurnTokens(PromptFormat format) => format switch
    {
        PromptFormat.Plain => ["</s>"],
        PromptFormat.ChatML => ["<|im_end|>", "<|endoftext|>"],
        PromptFormat.Llama3 => ["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"],
        PromptFormat.Gemma => ["<end_of_turn>", "<eos>"],
        PromptFormat.Harmony => ["<|end|>", "<|return|>", "<|call|>", "<|endoftext|>"],
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown prompt format."),
    };

    private Marker[] MarkersFor(Mode mode) => mode switch
    {
        Mode.Text => _normalMarkers,
        Mode.Think => ThinkMarkers,
        Mode.DroppedChannel => DroppedChannelMarkers,
        _ => ChannelHeaderMarkers,
    };

    private void Process(StringBuilder output, bool final)
    {
        var buffer = _pending;
        var i = 0;
        while (i < buffer.Length && _mode != Mode.Stopped)
        {
            var rest = buffer.AsSpan(i);
            var c = rest[0];
            Marker? match = null;
            var partial = false;
            if (c is '<' or '[' or '\n')
            {
                foreach (var marker in MarkersFor(_mode))
                {
                    if (rest.StartsWith(marker.Token, StringComparison.Ordinal))
                    {
                        match = marker;
                        break;
                    }

                    if (rest.Length < marker.Token.Length && marker.Token.AsSpan().StartsWith(rest, StringComparison.Ordinal))
                    {
                        partial = true;
                    }
                }
            }

            if (match is { } m)
            {
                if (m.Kind == MarkerKind.StartTurn)
                {
                    var after = rest[m.Token.Length..];
                    if (after.StartsWith(AssistantWord, StringComparison.Ordinal))
                    {
                        // Harmony's next assistant message (after an analysis channel): keep going, its channel header follows.
                        i += m.Token.Length + AssistantWord.Length;
                        _mode = Mode.Text;
                        continue;
                    }

                    if (!final && AssistantWord.AsSpan().StartsWith(after, StringComparison.Ordinal))
                    {
                        break;
                    }

                    Stop();
                    break;
                }

                i += m.Token.Length;
                Apply(m.Kind);
                continue;
            }

            if (partial && !final)
            {
                break;
            }

            if (char.IsHighSurrogate(c) && rest.Length == 1 && !final)
            {
                break;
            }

            Consume(c, output);
            i++;
        }

        _pending = _mode == Mode.Stopped ? "" : buffer[i..];
    }

    private void Apply(MarkerKind kind)
    {
        switch (kind)
        {
            case MarkerKind.Stop:
                Stop();
                break;
            case MarkerKind.ThinkOpen:
                _mode = Mode.Think;
                break;
            case MarkerKind.ThinkClose:
                _mode = Mode.Text;
                break;
            case MarkerKind.ChannelOpen:
                _channelName.Clear();
                _mode = Mode.ChannelHeader;
                break;
            case MarkerKind.ChannelMessage:
                _mode = IsFinalChannel() ? Mode.Text : Mode.DroppedChannel;
                break;
            default:
                break;
        }
    }

    private bool IsFinalChannel()
    {
        var header = _channelName.ToString().AsSpan().Trim();
        var end = header.IndexOfAny(' ', '<', '\t');
        var name = end < 0 ? header : header[..end];
        return name.Equals("final", StringComparison.Ordinal);
    }

    private void Stop()
    {
        _mode = Mode.Stopped;
        _heldWhitespace.Clear();
    }

    private void Consume(char c, StringBuilder output)
    {
        switch (_mode)
        {
            case Mode.Text when char.IsWhiteSpace(c):
                if (_emittedAny)
                {
                    _heldWhitespace.Append(c);
                }

                break;
            case Mode.Text:
                output.Append(_heldWhitespace).Append(c);
                _heldWhitespace.Clear();
                _emittedAny = true;
                break;
            case Mode.ChannelHeader when _channelName.Length < MaxChannelNameLength:
                _channelName.Append(c);
                break;
            default:
                break;
        }
    }

    private enum Mode
    {
        Text,
        Think,
        ChannelHeader,
        DroppedChannel,
        Stopped,
    }

    private enum MarkerKind
    {
        Remove,
        Stop,
        ThinkOpen,
        ThinkClose,
        ChannelOpen,
        ChannelMessage,
        StartTurn,
    }

    private readonly record struct Marker(string Token, MarkerKind Kind);
}
