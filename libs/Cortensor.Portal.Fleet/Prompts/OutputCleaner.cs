namespace Cortensor.Portal.Fleet.Prompts;

/// <summary>Cleans a model's raw completion text before it is shown to a customer.</summary>
/// <remarks>
/// The rules, applied left to right in one pass (the same engine as <see cref="StreamingOutputCleaner"/>, so streaming and
/// non-streaming answers are identical):
/// <list type="number">
/// <item>The end-of-turn tokens of <c>format</c> end the answer; the rest is dropped: Plain <c>&lt;/s&gt;</c>; ChatML
/// <c>&lt;|im_end|&gt;</c>, <c>&lt;|endoftext|&gt;</c>; Llama3 <c>&lt;|eot_id|&gt;</c>, <c>&lt;|eom_id|&gt;</c>, <c>&lt;|end_of_text|&gt;</c>;
/// Gemma <c>&lt;end_of_turn&gt;</c>, <c>&lt;eos&gt;</c>; Harmony <c>&lt;|end|&gt;</c>, <c>&lt;|return|&gt;</c>, <c>&lt;|call|&gt;</c>, <c>&lt;|endoftext|&gt;</c>
/// (outside an analysis or commentary channel).</item>
/// <item>A new turn ends the answer: <c>\nUser:</c>, <c>\nHuman:</c>, <c>\nAssistant:</c>, <c>&lt;|im_start|&gt;</c>,
/// <c>&lt;|start_header_id|&gt;</c>, <c>&lt;start_of_turn&gt;</c>, <c>&lt;|user|&gt;</c>, <c>&lt;|system|&gt;</c> (either case), and
/// <c>&lt;|start|&gt;</c> unless it is followed by <c>assistant</c> (harmony's next assistant message, which is skipped).</item>
/// <item>Every other special token of every known format is removed (<c>&lt;s&gt;</c>, <c>&lt;/s&gt;</c>, <c>[INST]</c>,
/// <c>&lt;|eot_id|&gt;</c>, <c>&lt;|im_end|&gt;</c>, <c>&lt;|end|&gt;</c>, <c>&lt;end_of_turn&gt;</c>, a stray <c>&lt;/think&gt;</c>, …).</item>
/// <item><c>&lt;think&gt;…&lt;/think&gt;</c> blocks are removed, and so is an unterminated trailing <c>&lt;think&gt;</c> block.
/// Nothing inside a think block is interpreted.</item>
/// <item>Harmony channels: <c>&lt;|channel|&gt;name…&lt;|message|&gt;</c> switches channel; only text on the <c>final</c> channel
/// (or text outside any channel) is kept, so analysis and commentary are dropped. Inside a dropped channel only
/// <c>&lt;|channel|&gt;</c> and <c>&lt;|start|&gt;</c> are interpreted.</item>
/// <item>Leading and trailing whitespace is trimmed; whitespace in the middle is kept as it is.</item>
/// </list>
/// </remarks>
public static class OutputCleaner
{
    /// <summary>Cleans <paramref name="text"/>, a complete completion produced for a prompt in <paramref name="format"/>.</summary>
    public static string Clean(PromptFormat format, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!StreamingOutputCleaner.MayHoldMarker(text))
        {
            return text.Trim(); // the usual answer: no special token or turn marker can be in it
        }

        var cleaner = new StreamingOutputCleaner(format);
        var head = cleaner.Push(text);
        return head + cleaner.Flush();
    }
}
