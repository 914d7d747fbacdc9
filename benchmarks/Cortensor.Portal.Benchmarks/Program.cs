using System.Globalization;
using Cortensor.Portal.Benchmarks;
using Cortensor.Portal.Benchmarks.Enforcement;
using Cortensor.Portal.Benchmarks.Journal;
using Cortensor.Portal.Benchmarks.Micro;
using Cortensor.Portal.Benchmarks.Suite;

// dotnet run -c Release --project benchmarks/Cortensor.Portal.Benchmarks -- suite|micro|ingest|enforcement [options]
// See benchmarks/README.md.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

switch (args.Length == 0 ? "" : args[0])
{
    case "ingest":
    {
        IngestSettings settings;
        try
        {
            settings = IngestSettings.Parse(args.AsSpan(1));
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine(ex.Message);
            Console.Error.WriteLine(IngestBenchmark.Usage);
            return 2;
        }

        return await IngestBenchmark.RunAsync(settings);
    }

    case "enforcement":
    {
        EnforcementSettings settings;
        try
        {
            settings = EnforcementSettings.Parse(args.AsSpan(1));
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine(ex.Message);
            Console.Error.WriteLine(EnforcementBenchmark.Usage);
            return 2;
        }

        var commandLine = "dotnet run -c Release --project benchmarks/Cortensor.Portal.Benchmarks -- " + string.Join(' ', args);
        return await EnforcementBenchmark.RunAsync(settings, commandLine);
    }

    case "suite":
    {
        SuiteSettings settings;
        try
        {
            settings = SuiteSettings.Parse(args.AsSpan(1));
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine(ex.Message);
            Console.Error.WriteLine(SuiteBenchmark.Usage);
            return 2;
        }

        var commandLine = "dotnet run -c Release --project benchmarks/Cortensor.Portal.Benchmarks -- " + string.Join(' ', args);
        return await SuiteBenchmark.RunAsync(settings, commandLine);
    }

    case "journal":
        return await JournalBenchmark.RunAsync(args[1..], "dotnet run -c Release --project benchmarks/Cortensor.Portal.Benchmarks -- " + string.Join(' ', args));

    case "micro":
        return MicroRunner.Run(args[1..]);

    case "serve":
        return await ServeCommand.RunAsync(args[1..]);

    default:
        Console.Error.WriteLine(SuiteBenchmark.Usage);
        Console.Error.WriteLine(MicroRunner.Usage);
        Console.Error.WriteLine(IngestBenchmark.Usage);
        Console.Error.WriteLine(EnforcementBenchmark.Usage);
        Console.Error.WriteLine(JournalBenchmark.Usage);
        return 2;
}
