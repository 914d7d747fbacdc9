using System.Globalization;
using Cortensor.Portal.Fleet.Prompts;

namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>The simulated router's deterministic answer, so tests anywhere can assert the exact text.</summary>
/// <remarks>
/// <para>The full answer is the words</para>
/// <code>Hello from Cortensor session {sessionId}. You said: {echo}</code>
/// <para>
/// where <c>{echo}</c> is built from the prompt: replace every special token of every known prompt format (ChatML, Llama 3,
/// Gemma, harmony, <c>&lt;s&gt;</c>/<c>[INST]</c>, <c>&lt;think&gt;</c>, …) with a space; split on whitespace; drop trailing words
/// that are, ignoring case and a trailing <c>:</c>, <c>assistant</c>, <c>model</c> or <c>final</c> (the open assistant turn);
/// keep the last 12 words. When no word is left the answer ends <c>You said nothing.</c> instead.
/// </para>
/// <para>
/// Tokens are the words, each followed by one space except the last one. With <c>maxTokens</c> &gt; 0 only the first
/// <c>maxTokens</c> tokens are sent (keeping the trailing space of the last one sent) and the finish reason is <c>length</c>
/// when tokens were cut, otherwise <c>stop</c>. <c>maxTokens</c> ≤ 0 means no limit.
/// </para>
/// <para>Example: session 7, prompt <c>"System: Be brief.\n\nUser: What is 2+2?\n\nAssistant:"</c> →
/// <c>"Hello from Cortensor session 7. You said: System: Be brief. User: What is 2+2?"</c> (14 tokens).</para>
/// </remarks>
public static class SimulatedReply
{
    /// <summary>How many trailing prompt words are echoed.</summary>
    public const int EchoWordCount = 12;

    private static readonly string[] OpenTurnWords = ["assistant", "model", "final"];

    /// <summary>The tokens sent for the prompt, cut to <paramref name="maxTokens"/> when it is positive.</summary>
    public static IReadOnlyList<string> Tokens(long sessionId, string prompt, int maxTokens)
    {
        var all = AllTokens(sessionId, prompt);
        return maxTokens > 0 && all.Count > maxTokens ? all.Take(maxTokens).ToArray() : all;
    }

    /// <summary>The concatenated <see cref="Tokens"/>.</summary>
    public static string Text(long sessionId, string prompt, int maxTokens) => string.Concat(Tokens(sessionId, prompt, maxTokens));

    /// <summary><c>length</c> when <paramref name="maxTokens"/> cut the answer, else <c>stop</c>.</summary>
    public static string FinishReason(long sessionId, string prompt, int maxTokens) =>
        maxTokens > 0 && AllTokens(sessionId, prompt).Count > maxTokens ? "length" : "stop";

    /// <summary>Every token of the full (uncut) answer.</summary>
    public static IReadOnlyList<string> AllTokens(long sessionId, string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var words = new List<string>
        {
            "Hello", "from", "Cortensor", "session", sessionId.ToString(CultureInfo.InvariantCulture) + ".", "You",
        };
        var echo = EchoWords(prompt);
        if (echo.Count == 0)
        {
            words.Add("said");
            words.Add("nothing.");
        }
        else
        {
            words.Add("said:");
            words.AddRange(echo);
        }

        var tokens = new string[words.Count];
        for (var i = 0; i < words.Count; i++)
        {
            tokens[i] = i == words.Count - 1 ? words[i] : words[i] + " ";
        }

        return tokens;
    }

    private static List<string> EchoWords(string prompt)
    {
        var text = SpecialTokens.Strip(prompt, SpecialTokens.All, " ");
        var words = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).ToList();
        while (words.Count > 0 && OpenTurnWords.Contains(words[^1].TrimEnd(':'), StringComparer.OrdinalIgnoreCase))
        {
            words.RemoveAt(words.Count - 1);
        }

        return words.Count > EchoWordCount ? words[^EchoWordCount..] : words;
    }
}
