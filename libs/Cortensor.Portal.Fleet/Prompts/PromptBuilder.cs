using System.Text;

namespace Cortensor.Portal.Fleet.Prompts;

/// <summary>Flattens chat messages into the single prompt string a Cortensor router takes.</summary>
/// <remarks>
/// <para>
/// Every prompt ends with an open assistant turn, so the model's output is the answer. Roles are matched
/// case-insensitively: <c>system</c>, <c>developer</c>, <c>user</c>, <c>assistant</c> and <c>tool</c>; anything else throws.
/// Message content is trimmed, and every control token of the chosen format (see below) is removed from it first,
/// repeatedly, so a caller cannot inject turn boundaries. Tokens of other formats are left alone.
/// </para>
/// <list type="table">
/// <listheader><term>Format</term><description>Shape (S = system, U = user, A = assistant)</description></listheader>
/// <item><term><see cref="PromptFormat.Plain"/></term><description>
/// <c>System: S\n\nUser: U\n\nAssistant: A\n\nUser: U\n\nAssistant:</c>. Developer text is labelled <c>System:</c>,
/// tool results <c>Tool:</c>. Strips <c>&lt;s&gt;</c>, <c>&lt;/s&gt;</c>, <c>[INST]</c>, <c>[/INST]</c>, <c>&lt;&lt;SYS&gt;&gt;</c>, <c>&lt;&lt;/SYS&gt;&gt;</c>.
/// </description></item>
/// <item><term><see cref="PromptFormat.ChatML"/></term><description>
/// <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c> per message, ending <c>&lt;|im_start|&gt;assistant\n</c>.
/// Developer becomes <c>system</c>; tool keeps its own <c>tool</c> role.
/// </description></item>
/// <item><term><see cref="PromptFormat.Llama3"/></term><description>
/// <c>&lt;|begin_of_text|&gt;</c>, then <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c> per message,
/// ending <c>&lt;|start_header_id|&gt;assistant&lt;|end_header_id|&gt;\n\n</c>. Developer becomes <c>system</c>; tool uses
/// Llama 3.1's <c>ipython</c> role.
/// </description></item>
/// <item><term><see cref="PromptFormat.Gemma"/></term><description>
/// <c>&lt;start_of_turn&gt;user\ncontent&lt;end_of_turn&gt;\n</c>, assistant as <c>model</c>, ending <c>&lt;start_of_turn&gt;model\n</c>.
/// Gemma has no system role: system and developer text (joined by a blank line) is prepended, followed by a blank line,
/// to the next user-side turn; when a model turn or the end comes first, it becomes a user turn of its own.
/// A tool result is a user turn starting <c>Tool result:\n</c>.
/// </description></item>
/// <item><term><see cref="PromptFormat.Harmony"/></term><description>
/// <c>&lt;|start|&gt;system&lt;|message|&gt;S&lt;|end|&gt;</c> for system text, <c>&lt;|start|&gt;developer&lt;|message|&gt;D&lt;|end|&gt;</c> for
/// developer text, <c>&lt;|start|&gt;user&lt;|message|&gt;U&lt;|end|&gt;</c>, assistant history as
/// <c>&lt;|start|&gt;assistant&lt;|channel|&gt;final&lt;|message|&gt;A&lt;|end|&gt;</c>, a tool result as a user turn starting
/// <c>Tool result:\n</c>, ending <c>&lt;|start|&gt;assistant&lt;|channel|&gt;final&lt;|message|&gt;</c>. Messages keep their order.
/// </description></item>
/// </list>
/// </remarks>
public static class PromptBuilder
{
    /// <summary>The prefix of a tool result in formats without a tool role (Gemma, Harmony).</summary>
    public const string ToolResultPrefix = "Tool result:\n";

    /// <summary>Builds the prompt for <paramref name="messages"/> in <paramref name="format"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="messages"/> or one of its items is null.</exception>
    /// <exception cref="ArgumentException">A message has an unknown role.</exception>
    public static string Build(PromptFormat format, IReadOnlyList<PromptMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var tokens = SpecialTokens.For(format);
        var turns = new List<(Role Role, string Content)>(messages.Count);
        foreach (var message in messages)
        {
            ArgumentNullException.ThrowIfNull(message, nameof(messages));
            turns.Add((ParseRole(message.Role), SpecialTokens.Strip(message.Content ?? "", tokens).Trim()));
        }

        return format switch
        {
            PromptFormat.Plain => BuildPlain(turns),
            PromptFormat.ChatML => BuildChatML(turns),
            PromptFormat.Llama3 => BuildLlama3(turns),
            PromptFormat.Gemma => BuildGemma(turns),
            PromptFormat.Harmony => BuildHarmony(turns),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown prompt format."),
        };
    }

    /// <summary>The router <c>prompt_type</c> that goes with <paramref name="format"/>: 0 for Plain, 1 (raw) for every templated format.</summary>
    public static int DefaultPromptType(PromptFormat format) => format == PromptFormat.Plain ? 0 : 1;

    /// <summary>Removes the control tokens of <paramref name="format"/> from <paramref name="content"/> (repeatedly), without trimming.</summary>
    public static string StripControlTokens(PromptFormat format, string content)
    {
        ArgumentNullException.ThrowIfNull(content);
        return SpecialTokens.Strip(content, SpecialTokens.For(format));
    }

    private enum Role
    {
        System,
        Developer,
        User,
        Assistant,
        Tool,
    }

    private static Role ParseRole(string? role) => role?.Trim().ToUpperInvariant() switch
    {
        "SYSTEM" => Role.System,
        "DEVELOPER" => Role.Developer,
        "USER" => Role.User,
        "ASSISTANT" => Role.Assistant,
        "TOOL" => Role.Tool,
        _ => throw new ArgumentException($"Unknown message role '{role}'.", nameof(role)),
    };

    private static string BuildPlain(List<(Role Role, string Content)> turns)
    {
        var sb = new StringBuilder();
        foreach (var (role, content) in turns)
        {
            var label = role switch
            {
                Role.System or Role.Developer => "System",
                Role.User => "User",
                Role.Assistant => "Assistant",
                _ => "Tool",
            };
            sb.Append(label).Append(':');
            if (content.Length > 0)
            {
                sb.Append(' ').Append(content);
            }

            sb.Append("\n\n");
        }

        return sb.Append("Assistant:").ToString();
    }

    private static string BuildChatML(List<(Role Role, string Content)> turns)
    {
        var sb = new StringBuilder();
        foreach (var (role, content) in turns)
        {
            var name = role switch
            {
                Role.System or Role.Developer => "system",
                Role.User => "user",
                Role.Assistant => "assistant",
                _ => "tool",
            };
            sb.Append("<|im_start|>").Append(name).Append('\n').Append(content).Append("<|im_end|>\n");
        }

        return sb.Append("<|im_start|>assistant\n").ToString();
    }

    private static string BuildLlama3(List<(Role Role, string Content)> turns)
    {
        var sb = new StringBuilder("<|begin_of_text|>");
        foreach (var (role, content) in turns)
        {
            var name = role switch
            {
                Role.System or Role.Developer => "system",
                Role.User => "user",
                Role.Assistant => "assistant",
                _ => "ipython",
            };
            sb.Append("<|start_header_id|>").Append(name).Append("<|end_header_id|>\n\n").Append(content).Append("<|eot_id|>");
        }

        return sb.Append("<|start_header_id|>assistant<|end_header_id|>\n\n").ToString();
    }

    private static string BuildGemma(List<(Role Role, string Content)> turns)
    {
        var sb = new StringBuilder();
        var pendingSystem = new StringBuilder();

        void Turn(string name, string content) =>
            sb.Append("<start_of_turn>").Append(name).Append('\n').Append(content).Append("<end_of_turn>\n");

        void FlushSystem()
        {
            if (pendingSystem.Length > 0)
            {
                Turn("user", pendingSystem.ToString());
                pendingSystem.Clear();
            }
        }

        foreach (var (role, content) in turns)
        {
            switch (role)
            {
                case Role.System or Role.Developer:
                    if (pendingSystem.Length > 0)
                    {
                        pendingSystem.Append("\n\n");
                    }

                    pendingSystem.Append(content);
                    break;
                case Role.Assistant:
                    FlushSystem();
                    Turn("model", content);
                    break;
                default:
                    var text = role == Role.Tool ? ToolResultPrefix + content : content;
                    if (pendingSystem.Length > 0)
                    {
                        text = pendingSystem.Append("\n\n").Append(text).ToString();
                        pendingSystem.Clear();
                    }

                    Turn("user", text);
                    break;
            }
        }

        FlushSystem();
        return sb.Append("<start_of_turn>model\n").ToString();
    }

    private static string BuildHarmony(List<(Role Role, string Content)> turns)
    {
        var sb = new StringBuilder();
        foreach (var (role, content) in turns)
        {
            var (header, text) = role switch
            {
                Role.System => ("system", content),
                Role.Developer => ("developer", content),
                Role.User => ("user", content),
                Role.Assistant => ("assistant<|channel|>final", content),
                _ => ("user", ToolResultPrefix + content),
            };
            sb.Append("<|start|>").Append(header).Append("<|message|>").Append(text).Append("<|end|>");
        }

        return sb.Append("<|start|>assistant<|channel|>final<|message|>").ToString();
    }
}
