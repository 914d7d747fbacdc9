using Cortensor.Portal.Cli;

return await CliApplication.BuildRootCommand().Parse(args).InvokeAsync();
