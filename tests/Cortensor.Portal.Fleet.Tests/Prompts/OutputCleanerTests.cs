using Cortensor.Portal.Fleet.Prompts;

namespace Cortensor.Portal.Fleet.Tests.Prompts;

public sealed class OutputCleanerTests
{
    [Theory]
    [InlineData(PromptFormat.ChatML, "Hello<|im_end|>", "Hello")]
    [InlineData(PromptFormat.ChatML, "Hel<|eot_id|>lo</s> there", "Hello there")]
    [InlineData(PromptFormat.Llama3, "<|begin_of_text|>Answer<|eot_id|>", "Answer")]
    [InlineData(PromptFormat.Plain, "<s>Hello [INST]world[/INST]</s>", "Hello world")]
    [InlineData(PromptFormat.Gemma, "<bos>Hi<|im_end|> you<end_of_turn>", "Hi you")]
    [InlineData(PromptFormat.Harmony, "Final answer<|return|>", "Final answer")]
    [InlineData(PromptFormat.ChatML, "A<|end|>B<|return|>C<end_of_turn>D<|endoftext|>", "ABCD")]
    [InlineData(PromptFormat.ChatML, "stray</think> end", "stray end")]
    public void Clean_SpecialTokens_AreRemoved(PromptFormat format, string raw, string expected)
    {
        Assert.Equal(expected, OutputCleaner.Clean(format, raw));
    }

    [Theory]
    [InlineData(PromptFormat.ChatML, "Hello<|im_end|>\nmore words", "Hello")]
    [InlineData(PromptFormat.Llama3, "Answer<|eot_id|>extra", "Answer")]
    [InlineData(PromptFormat.Gemma, "Answer<end_of_turn>\nextra", "Answer")]
    [InlineData(PromptFormat.Plain, "Answer</s>extra", "Answer")]
    [InlineData(PromptFormat.Harmony, "Answer<|end|>extra", "Answer")]
    public void Clean_FormatEndOfTurnToken_EndsTheAnswer(PromptFormat format, string raw, string expected)
    {
        Assert.Equal(expected, OutputCleaner.Clean(format, raw));
    }

    [Theory]
    [InlineData("<think>Let me see.\nUser: hmm</think>\n\nThe answer is 4.", "The answer is 4.")]
    [InlineData("Before <think>x</think>after", "Before after")]
    [InlineData("Answer first<think>never closed, \nUser: ignored", "Answer first")]
    [InlineData("<think>a</think>One<think>b</think> two", "One two")]
    public void Clean_ThinkBlocks_AreRemoved(string raw, string expected)
    {
        Assert.Equal(expected, OutputCleaner.Clean(PromptFormat.ChatML, raw));
    }

    [Theory]
    [InlineData("<|channel|>analysis<|message|>Let me think. User asks 2+2.<|end|><|start|>assistant<|channel|>final<|message|>The answer is 4.<|return|>", "The answer is 4.")]
    [InlineData("<|start|>assistant<|channel|>analysis<|message|>x\nUser: y<|end|><|start|>assistant<|channel|>final<|message|>Hi", "Hi")]
    [InlineData("<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{\"q\":1}<|call|>", "")]
    [InlineData("<|channel|>analysis<|message|>only reasoning, cut by max_tokens", "")]
    [InlineData("<|channel|>final<|message|>Direct", "Direct")]
    [InlineData("Plain answer<|end|><|start|>user<|message|>next", "Plain answer")]
    public void Clean_HarmonyChannels_KeepOnlyFinalChannel(string raw, string expected)
    {
        Assert.Equal(expected, OutputCleaner.Clean(PromptFormat.Harmony, raw));
    }

    [Theory]
    [InlineData("Sure thing.\nUser: and now?", "Sure thing.")]
    [InlineData("Sure.\n\nHuman: more", "Sure.")]
    [InlineData("Sure.\nAssistant: again", "Sure.")]
    [InlineData("Yes<|im_start|>user\nx", "Yes")]
    [InlineData("Yes<|start_header_id|>user<|end_header_id|>", "Yes")]
    [InlineData("Yes<start_of_turn>user", "Yes")]
    [InlineData("Yes <|start|>user<|message|>x", "Yes")]
    [InlineData("Yes<|USER|>again", "Yes")]
    [InlineData("Users: are\nUsers: fine", "Users: are\nUsers: fine")]
    public void Clean_TurnMarkers_CutTheText(string raw, string expected)
    {
        Assert.Equal(expected, OutputCleaner.Clean(PromptFormat.Plain, raw));
    }

    [Theory]
    [InlineData("  Hello world \n\t ", "Hello world")]
    [InlineData("Line one   \n\n  line two\n", "Line one   \n\n  line two")]
    [InlineData(" \n ", "")]
    [InlineData("", "")]
    public void Clean_Whitespace_IsTrimmedAtTheEnds(string raw, string expected)
    {
        Assert.Equal(expected, OutputCleaner.Clean(PromptFormat.ChatML, raw));
    }

    [Theory]
    [InlineData("a < b and [c] <b>bold</b>", "a < b and [c] <b>bold</b>")]
    [InlineData("Hello <|im", "Hello <|im")]
    [InlineData("Hello\nUse", "Hello\nUse")]
    [InlineData("héllo 👋 wörld<|im_end|>", "héllo 👋 wörld")]
    public void Clean_OrdinaryText_IsKept(string raw, string expected)
    {
        Assert.Equal(expected, OutputCleaner.Clean(PromptFormat.ChatML, raw));
    }

    [Theory]
    [InlineData("  Hello there.  ")]
    [InlineData("\u00a0\u2003mid  spaces\tkept\u3000")]
    [InlineData("plain")]
    [InlineData("")]
    [InlineData(" \t ")]
    [InlineData("a|b>c/d")]
    public void Clean_TextWithoutMarkerCharacters_MatchesTheStreamingCleanerForEveryFormat(string raw)
    {
        foreach (var format in Enum.GetValues<PromptFormat>())
        {
            var streaming = new StreamingOutputCleaner(format);
            var expected = streaming.Push(raw) + streaming.Flush();

            Assert.Equal(expected, OutputCleaner.Clean(format, raw));
        }
    }
}
