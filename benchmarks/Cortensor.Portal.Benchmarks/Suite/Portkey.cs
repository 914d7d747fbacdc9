using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>
/// The Portkey AI gateway (npm <c>@portkey-ai/gateway</c>, pinned in <c>benchmarks/peers/portkey/package.json</c>) as a
/// peer: installed there with <c>npm install</c> on first use, started under node bound to 127.0.0.1 and with the
/// upstream Response headers made mutable (two preload scripts next to package.json; see peers.md §4).
/// </summary>
internal static class Portkey
{
    public static async Task<ChildProcess> StartAsync(string folder, string logs)
    {
        var server = Path.Combine(folder, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js");
        if (!File.Exists(server))
        {
            Console.WriteLine($"Portkey: npm install in {folder} …");
            var install = new ProcessStartInfo("npm") { WorkingDirectory = folder, UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in new[] { "install", "--no-audit", "--no-fund" })
            {
                install.ArgumentList.Add(argument);
            }

            using var npm = Process.Start(install) ?? throw new InvalidOperationException("npm could not be started.");
            var output = npm.StandardOutput.ReadToEndAsync();
            var error = npm.StandardError.ReadToEndAsync();
            if (!npm.WaitForExit(TimeSpan.FromMinutes(5)))
            {
                npm.Kill(entireProcessTree: true);
                throw new TimeoutException("npm install took more than 5 minutes.");
            }

            if (npm.ExitCode != 0 || !File.Exists(server))
            {
                throw new InvalidOperationException($"npm install failed ({npm.ExitCode}): {await error}{await output}");
            }
        }

        var port = ChildProcess.FreePort();
        var start = new ProcessStartInfo("node") { WorkingDirectory = folder };
        start.ArgumentList.Add(server);
        start.ArgumentList.Add("--port=" + port.ToString(CultureInfo.InvariantCulture));
        start.ArgumentList.Add("--headless");
        start.Environment["NODE_OPTIONS"] = $"--require {Path.Combine(folder, "bind-loopback.cjs")} --require {Path.Combine(folder, "mutable-fetch-headers.cjs")}";
        start.Environment["NODE_ENV"] = "production";
        return await ChildProcess.StartAsync("portkey", logs, start, port);
    }

    public static string Version(string folder)
    {
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "node_modules", "@portkey-ai", "gateway", "package.json")));
            return json.RootElement.GetProperty("version").GetString() ?? "?";
        }
        catch (IOException)
        {
            return "?";
        }
    }

    public static string NodeVersion()
    {
        try
        {
            using var node = Process.Start(new ProcessStartInfo("node", "--version") { RedirectStandardOutput = true, UseShellExecute = false });
            var version = node!.StandardOutput.ReadToEnd().Trim();
            node.WaitForExit();
            return version;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "?";
        }
    }
}
