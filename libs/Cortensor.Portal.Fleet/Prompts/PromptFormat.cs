namespace Cortensor.Portal.Fleet.Prompts;

/// <summary>How chat messages are flattened into the single prompt string a Cortensor router takes.</summary>
public enum PromptFormat
{
    /// <summary>"System:", "User:", "Assistant:" lines; the miner applies no template of its own (<c>prompt_type</c> 0).</summary>
    Plain,

    /// <summary><c>&lt;|im_start|&gt;role … &lt;|im_end|&gt;</c> (Qwen and others).</summary>
    ChatML,

    /// <summary><c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt; … &lt;|eot_id|&gt;</c>.</summary>
    Llama3,

    /// <summary><c>&lt;start_of_turn&gt;user … &lt;end_of_turn&gt;</c>; Gemma has no system role, so system text leads the first user turn.</summary>
    Gemma,

    /// <summary>gpt-oss "harmony": <c>&lt;|start|&gt;role&lt;|message|&gt; … &lt;|end|&gt;</c>, answer on the <c>final</c> channel.</summary>
    Harmony,
}

/// <summary>One chat message as the prompt builder sees it (text only).</summary>
public sealed record PromptMessage(string Role, string Content);
