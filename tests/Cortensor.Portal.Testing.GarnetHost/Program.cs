using Garnet;

// Garnet in a process of its own, for the tests that kill, freeze (SIGSTOP) and restart the server.
// Arguments are Garnet's own (see Cortensor.Portal.Testing.Redis.TestRedisServers.GarnetArguments).
using var server = new GarnetServer(args);
server.Start();
Thread.Sleep(Timeout.Infinite);
