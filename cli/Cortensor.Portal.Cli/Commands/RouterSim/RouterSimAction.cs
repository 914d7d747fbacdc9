using System.CommandLine;
using System.Globalization;
using Cortensor.Portal.Fleet.Simulator;

namespace Cortensor.Portal.Cli.Commands.RouterSim;

/// <summary>Turns the parsed options into simulator options and runs the simulator until Ctrl+C.</summary>
internal sealed class RouterSimAction(RouterSimCommandDefinition definition, ParseResult parseResult)
{
    public async Task<int> RunAsync(TextWriter output, CancellationToken cancellationToken)
    {
        RouterSimulatorOptions options;
        try
        {
            options = BuildOptions();
        }
        catch (FormatException ex)
        {
            await parseResult.InvocationConfiguration.Error.WriteLineAsync(ex.Message);
            return 1;
        }

        var urls = parseResult.GetRequiredValue(definition.Urls);
        await using var server = await RouterSimulatorServer.StartAsync(options, urls, cancellationToken);
        await output.WriteLineAsync($"Cortensor router simulator listening on {server.BaseUrl} (Ctrl+C to stop)");
        await output.FlushAsync(cancellationToken);
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }

        return 0;
    }

    internal RouterSimulatorOptions BuildOptions()
    {
        var errorRate = Rate(definition.ErrorRate);
        var emptyRate = Rate(definition.EmptyRate);
        var timeoutRate = Rate(definition.TimeoutRate);
        if (errorRate + emptyRate + timeoutRate > 1)
        {
            throw new FormatException("--error-rate, --empty-rate and --timeout-rate must add up to 1 or less.");
        }

        var timeoutAfterMs = parseResult.GetValue(definition.TimeoutAfterMs);
        if (timeoutAfterMs < 0)
        {
            throw new FormatException("--timeout-after-ms must be 0 or more.");
        }

        return new RouterSimulatorOptions
        {
            ApiKey = parseResult.GetRequiredValue(definition.ApiKey),
            Sessions = (parseResult.GetValue(definition.Sessions) ?? []).Select(ParseSession).ToList(),
            Latency = TimeSpan.FromMilliseconds(parseResult.GetValue(definition.LatencyMs)),
            TimeToFirstToken = TimeSpan.FromMilliseconds(parseResult.GetValue(definition.TimeToFirstTokenMs)),
            TokensPerSecond = parseResult.GetValue(definition.TokensPerSecond),
            ErrorRate = errorRate,
            ErrorStatusCode = parseResult.GetValue(definition.ErrorStatus),
            EmptyReplyRate = emptyRate,
            TimeoutRate = timeoutRate,
            TimeoutAfter = timeoutAfterMs > 0 ? TimeSpan.FromMilliseconds(timeoutAfterMs) : null,
            Seed = parseResult.GetValue(definition.Seed),
            OmitUsage = parseResult.GetValue(definition.NoUsage),
            OmitDone = parseResult.GetValue(definition.NoDone),
            InterleaveMiners = parseResult.GetValue(definition.InterleaveMiners),
            NonBlockingStreamQueue = parseResult.GetValue(definition.NonBlockingStreamQueue),
            UrlForms = parseResult.GetValue(definition.UrlForm),
            PlainTextErrors = parseResult.GetValue(definition.PlainTextErrors),
            AppendTurnMarker = parseResult.GetValue(definition.TurnMarker),
        };
    }

    private double Rate(Option<double> option)
    {
        var rate = parseResult.GetValue(option);
        return rate is >= 0 and <= 1 ? rate : throw new FormatException($"{option.Name} must be between 0 and 1.");
    }

    private static SimulatedSession ParseSession(string value)
    {
        var parts = value.Split('=', 2);
        if (!long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            throw new FormatException($"--session '{value}': expected ID or ID=MODEL with a numeric ID.");
        }

        return parts.Length == 2 && parts[1].Length > 0
            ? new SimulatedSession { Id = id, Model = parts[1] }
            : new SimulatedSession { Id = id };
    }
}
