using System.Text;
using Cortensor.Portal.Fleet.Prompts;

namespace Cortensor.Portal.Fleet.Tests.Prompts;

public sealed class StreamingOutputCleanerTests
{
    private static readonly string[] Inputs =
    [
        "Hello there, how can I help?",
        "  Leading and trailing space  \n ",
        "Hello<|im_end|>\n<|im_start|>user\nmore",
        "<|begin_of_text|>Answer<|eot_id|><|start_header_id|>user",
        "<s>[INST]x[/INST] Hi</s> junk",
        "Sure thing.\nUser: and now?",
        "Sure.\n\nHuman: more\nAssistant: x",
        "Users: are\nUsers: fine\nUse it",
        "<think>Let me see.\nUser: hmm</think>\n\nThe answer is 4.",
        "Before <think>x</think>after <think>a",
        "<|channel|>analysis<|message|>Think <|end|><|start|>assistant<|channel|>final<|message|>The answer is 4.<|return|>",
        "<|start|>assistant<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>final<|message|>Hi <|end|><|start|>user",
        "<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{}<|call|>",
        "Answer<end_of_turn>\n<start_of_turn>user\nx",
        "a < b and [c] <b>bold</b> \n <|im",
        "héllo 👋 wörld \n\n 😀<|im_end|>",
        "Line one   \n\n  line two\n<|eot_id|> tail",
        "Text <|start|>assistan",
        "Text <|start|>assistant more",
        "x<|im_<|im_end|>start|>y",
        "Hi\r\nUser: next",
    ];

    public static TheoryData<PromptFormat> Formats => [.. Enum.GetValues<PromptFormat>()];

    [Theory]
    [MemberData(nameof(Formats))]
    public void Push_RandomChunkings_ConcatenationEqualsClean(PromptFormat format)
    {
        var random = new Random(20260611);
        foreach (var input in Inputs)
        {
            var expected = OutputCleaner.Clean(format, input);
            for (var round = 0; round < 60; round++)
            {
                var cleaner = new StreamingOutputCleaner(format);
                var output = new StringBuilder();
                var position = 0;
                while (position < input.Length)
                {
                    var size = Math.Min(input.Length - position, random.Next(1, round % 3 == 0 ? 3 : 9));
                    output.Append(cleaner.Push(input.Substring(position, size)));
                    position += size;
                }

                output.Append(cleaner.Flush());
                Assert.True(
                    expected == output.ToString(),
                    $"Format {format}, input {input.ReplaceLineEndings("\\n")}: expected '{expected}', got '{output}'.");
            }
        }
    }

    [Fact]
    public void Push_PartialSpecialToken_IsHeldBackUntilResolved()
    {
        var cleaner = new StreamingOutputCleaner(PromptFormat.ChatML);

        Assert.Equal("Hello", cleaner.Push("Hello <|im"));
        Assert.Equal("", cleaner.Push("_end|>more"));
        Assert.True(cleaner.IsStopped);
        Assert.Equal("", cleaner.Push("even more"));
        Assert.Equal("", cleaner.Flush());
    }

    [Fact]
    public void Push_PartialTurnMarker_IsHeldBackThenStops()
    {
        var cleaner = new StreamingOutputCleaner(PromptFormat.Plain);

        Assert.Equal("Hi", cleaner.Push("Hi\nUse"));
        Assert.False(cleaner.IsStopped);
        Assert.Equal("", cleaner.Push("r: next question"));
        Assert.True(cleaner.IsStopped);
    }

    [Fact]
    public void Push_PartialMarkerThatDoesNotComplete_IsReleased()
    {
        var cleaner = new StreamingOutputCleaner(PromptFormat.Plain);

        Assert.Equal("Hi", cleaner.Push("Hi\nUse"));
        Assert.Equal("\nUsers", cleaner.Push("rs"));
        Assert.False(cleaner.IsStopped);
    }

    [Fact]
    public void Push_ThinkBlock_IsSuppressed()
    {
        var cleaner = new StreamingOutputCleaner(PromptFormat.ChatML);

        Assert.Equal("", cleaner.Push("<think>secret"));
        Assert.Equal("", cleaner.Push(" reasoning</thi"));
        Assert.Equal("Yes", cleaner.Push("nk>Yes"));
        Assert.Equal("", cleaner.Flush());
    }

    [Fact]
    public void Push_HarmonyAnalysis_IsSuppressedUntilFinal()
    {
        var cleaner = new StreamingOutputCleaner(PromptFormat.Harmony);

        Assert.Equal("", cleaner.Push("<|channel|>analysis<|message|>thinking hard"));
        Assert.Equal("", cleaner.Push("<|end|><|start|>assistant<|channel|>final<|message|>"));
        Assert.Equal("Four", cleaner.Push("Four"));
        Assert.Equal("", cleaner.Push("<|return|>"));
        Assert.True(cleaner.IsStopped);
    }

    [Fact]
    public void Flush_HeldTrailingWhitespace_IsDropped()
    {
        var cleaner = new StreamingOutputCleaner(PromptFormat.ChatML);

        Assert.Equal("Hello", cleaner.Push("Hello \n"));
        Assert.Equal(" \nworld", cleaner.Push("world"));
        Assert.Equal("", cleaner.Push("  "));
        Assert.Equal("", cleaner.Flush());
    }

    [Fact]
    public void Push_AfterFlush_Throws()
    {
        var cleaner = new StreamingOutputCleaner(PromptFormat.ChatML);
        cleaner.Flush();

        Assert.Throws<InvalidOperationException>(() => cleaner.Push("x"));
    }
}
