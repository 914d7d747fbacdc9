using System.Globalization;
using Cortensor.Portal.Benchmarks;

// dotnet run -c Release --project benchmarks/Cortensor.Portal.Benchmarks -- ingest [options]
// See benchmarks/README.md.
if (args.Length == 0 || args[0] != "ingest")
{
    Console.Error.WriteLine(IngestBenchmark.Usage);
    return 2;
}

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

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
return await IngestBenchmark.RunAsync(settings);
