using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Simulator;

namespace Cortensor.Portal.Fleet.Tests.Simulator;

public sealed class SimulatedReplyTests
{
    [Fact]
    public void Text_PlainPrompt_EchoesPromptWithoutOpenTurnLabel()
    {
        var text = SimulatedReply.Text(7, "System: Be brief.\n\nUser: What is 2+2?\n\nAssistant:", 0);

        Assert.Equal("Hello from Cortensor session 7. You said: System: Be brief. User: What is 2+2?", text);
    }

    [Fact]
    public void Tokens_PlainPrompt_AreWordsWithTrailingSpaceExceptLast()
    {
        var tokens = SimulatedReply.Tokens(7, "User: Hi\n\nAssistant:", 0);

        Assert.Equal(["Hello ", "from ", "Cortensor ", "session ", "7. ", "You ", "said: ", "User: ", "Hi"], tokens);
    }

    [Theory]
    [InlineData(PromptFormat.ChatML)]
    [InlineData(PromptFormat.Llama3)]
    [InlineData(PromptFormat.Gemma)]
    [InlineData(PromptFormat.Harmony)]
    public void Text_TemplatedPrompt_DropsSpecialTokensAndAssistantHeader(PromptFormat format)
    {
        var prompt = PromptBuilder.Build(format, [new("user", "Tell me a joke")]);

        var text = SimulatedReply.Text(3, prompt, 0);

        Assert.Equal("Hello from Cortensor session 3. You said: user Tell me a joke", text);
    }

    [Fact]
    public void Text_LongPrompt_EchoesLastTwelveWords()
    {
        var prompt = string.Join(' ', Enumerable.Range(1, 30).Select(i => "w" + i));

        var text = SimulatedReply.Text(1, prompt, 0);

        Assert.Equal("Hello from Cortensor session 1. You said: w19 w20 w21 w22 w23 w24 w25 w26 w27 w28 w29 w30", text);
    }

    [Fact]
    public void Text_EmptyPrompt_SaysNothing()
    {
        Assert.Equal("Hello from Cortensor session 9. You said nothing.", SimulatedReply.Text(9, "<|im_start|>assistant\n", 0));
    }

    [Fact]
    public void Tokens_MaxTokens_CutsAndReportsLength()
    {
        Assert.Equal("Hello from Cortensor ", SimulatedReply.Text(5, "Hi", 3));
        Assert.Equal("length", SimulatedReply.FinishReason(5, "Hi", 3));
        Assert.Equal("stop", SimulatedReply.FinishReason(5, "Hi", 8));
        Assert.Equal(8, SimulatedReply.Tokens(5, "Hi", 100).Count);
    }
}
