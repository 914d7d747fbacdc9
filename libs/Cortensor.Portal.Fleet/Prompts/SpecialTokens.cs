namespace Cortensor.Portal.Fleet.Prompts;

/// <summary>The control tokens of every prompt format the fleet knows, shared by the prompt builder and the output cleaners.</summary>
internal static class SpecialTokens
{
    /// <summary>Llama 2 / Mistral style tokens; the only ones <see cref="PromptFormat.Plain"/> strips from message content.</summary>
    public static readonly string[] Plain = ["<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"];

    public static readonly string[] ChatML = ["<|im_start|>", "<|im_end|>", "<|im_sep|>", "<|endoftext|>"];

    public static readonly string[] Llama3 =
    [
        "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
        "<|python_tag|>", "<|finetune_right_pad_id|>",
    ];

    public static readonly string[] Gemma = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>"];

    public static readonly string[] Harmony =
    [
        "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>", "<|startoftext|>",
        "<|endoftext|>",
    ];

    /// <summary>Role tokens some community clients use (<c>&lt;|USER|&gt;</c> …) and Phi/Zephyr-style templates.</summary>
    public static readonly string[] RoleTags = ["<|user|>", "<|system|>", "<|assistant|>", "<|USER|>", "<|SYSTEM|>", "<|ASSISTANT|>"];

    /// <summary>Reasoning markers (DeepSeek-R1, Qwen3).</summary>
    public static readonly string[] Think = ["<think>", "</think>"];

    /// <summary>Every token above, without duplicates, longest first.</summary>
    public static readonly string[] All =
        [.. Plain.Concat(ChatML).Concat(Llama3).Concat(Gemma).Concat(Harmony).Concat(RoleTags).Concat(Think)
            .Distinct(StringComparer.Ordinal).OrderByDescending(t => t.Length)];

    /// <summary>The tokens of one format, stripped from message content before templating.</summary>
    public static string[] For(PromptFormat format) => format switch
    {
        PromptFormat.Plain => Plain,
        PromptFormat.ChatML => ChatML,
        PromptFormat.Llama3 => Llama3,
        PromptFormat.Gemma => Gemma,
        PromptFormat.Harmony => Harmony,
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown prompt format."),
    };

    /// <summary>
    /// Removes every occurrence of <paramref name="tokens"/> from <paramref name="text"/>, repeating until none is left
    /// (so <c>&lt;|im_&lt;|im_end|&gt;start|&gt;</c> cannot reassemble into a token), replacing each with <paramref name="replacement"/>.
    /// </summary>
    public static string Strip(string text, IReadOnlyList<string> tokens, string replacement = "")
    {
        var current = text;
        while (true)
        {
            var next = current;
            foreach (var token in tokens)
            {
                next = next.Replace(token, replacement, StringComparison.Ordinal);
            }

            if (string.Equals(next, current, StringComparison.Ordinal))
            {
                return current;
            }

            current = next;
        }
    }
}
