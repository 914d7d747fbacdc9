using System.CommandLine;
using System.Net;
using System.Text.RegularExpressions;
using Cortensor.Portal.Cli.Commands.RouterSim;
using Cortensor.Portal.Fleet.Simulator;

namespace Cortensor.Portal.Cli.Tests;

public sealed partial class RouterSimCommandTests
{
    [Fact]
    public async Task Version_PrintsVersionAndSucceeds()
    {
        var output = new StringWriter();

        var exit = await CliApplication.BuildRootCommand().Parse("--version").InvokeAsync(new InvocationConfiguration { Output = output });

        Assert.Equal(0, exit);
        Assert.Matches(@"^\d+\.\d+\.\d+", output.ToString().Trim());
    }

    [Fact]
    public void RouterSim_Options_MapToSimulatorOptions()
    {
        var root = CliApplication.BuildRootCommand();
        var parse = root.Parse("router-sim --api-key k1 --session 5=gpt-oss:20b --session 7 --latency-ms 20 --ttft-ms 30 --tokens-per-second 12.5 --error-rate 0.25 --error-status 502 --seed 9 --no-usage --no-done --interleave-miners --non-blocking-stream-queue --url-form BodyOnly --plain-text-errors --turn-marker");
        Assert.Empty(parse.Errors);
        var definition = root.Subcommands.OfType<RouterSimCommandDefinition>().Single();

        var options = new RouterSimAction(definition, parse).BuildOptions();

        Assert.Equal("k1", options.ApiKey);
        Assert.Equal([5L, 7L], options.Sessions.Select(s => s.Id));
        Assert.Equal("gpt-oss:20b", options.Sessions[0].Model);
        Assert.Equal(RouterSimulatorOptions.DefaultModel, options.Sessions[1].Model);
        Assert.Equal(TimeSpan.FromMilliseconds(20), options.Latency);
        Assert.Equal(TimeSpan.FromMilliseconds(30), options.TimeToFirstToken);
        Assert.Equal(12.5, options.TokensPerSecond);
        Assert.Equal(0.25, options.ErrorRate);
        Assert.Equal(502, options.ErrorStatusCode);
        Assert.Equal(9, options.Seed);
        Assert.True(options.OmitUsage && options.OmitDone && options.InterleaveMiners && options.PlainTextErrors && options.AppendTurnMarker);
        Assert.Equal(SimulatedUrlForms.BodyOnly, options.UrlForms);
        Assert.True(options.NonBlockingStreamQueue);
    }

    [Fact]
    public void RouterSim_EmptyAndTimeoutFlags_MapToSimulatorOptions()
    {
        var root = CliApplication.BuildRootCommand();
        var parse = root.Parse("router-sim --empty-rate 0.25 --timeout-rate 0.5 --timeout-after-ms 1500");
        Assert.Empty(parse.Errors);
        var definition = root.Subcommands.OfType<RouterSimCommandDefinition>().Single();

        var options = new RouterSimAction(definition, parse).BuildOptions();

        Assert.Equal(0.25, options.EmptyReplyRate);
        Assert.Equal(0.5, options.TimeoutRate);
        Assert.Equal(TimeSpan.FromMilliseconds(1500), options.TimeoutAfter);
        Assert.Null(new RouterSimAction(definition, root.Parse("router-sim")).BuildOptions().TimeoutAfter);
    }

    [Theory]
    [InlineData("router-sim --error-rate 2")]
    [InlineData("router-sim --empty-rate -0.1")]
    [InlineData("router-sim --timeout-rate 1.5")]
    [InlineData("router-sim --error-rate 0.5 --empty-rate 0.3 --timeout-rate 0.3")]
    [InlineData("router-sim --timeout-after-ms -1")]
    [InlineData("router-sim --session abc")]
    public async Task RouterSim_BadValues_ExitWithUserError(string args)
    {
        var error = new StringWriter();

        var exit = await CliApplication.BuildRootCommand().Parse(args).InvokeAsync(new InvocationConfiguration { Output = new StringWriter(), Error = error });

        Assert.Equal(1, exit);
        Assert.NotEmpty(error.ToString());
    }

    [Fact]
    public async Task RouterSim_Runs_ServesRouterApiUntilCancelled()
    {
        var root = CliApplication.BuildRootCommand();
        var definition = root.Subcommands.OfType<RouterSimCommandDefinition>().Single();
        var parse = root.Parse("router-sim --urls http://127.0.0.1:0 --api-key cli-test-key");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var output = new SignallingWriter();

        var run = new RouterSimAction(definition, parse).RunAsync(output, cts.Token);
        var line = await output.FirstLine.Task.WaitAsync(TimeSpan.FromSeconds(20));
        var url = UrlPattern().Match(line).Value;
        using var http = new HttpClient { BaseAddress = new Uri(url) };
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/api/v1/status")).StatusCode);
        http.DefaultRequestHeaders.Authorization = new("Bearer", "cli-test-key");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/v1/status")).StatusCode);

        await cts.CancelAsync();
        Assert.Equal(0, await run);
    }

    [GeneratedRegex(@"http://127\.0\.0\.1:\d+")]
    private static partial Regex UrlPattern();

    private sealed class SignallingWriter : StringWriter
    {
        public TaskCompletionSource<string> FirstLine { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override Task WriteLineAsync(string? value)
        {
            FirstLine.TrySetResult(value ?? "");
            return base.WriteLineAsync(value);
        }
    }
}
