namespace Cortensor.Portal.Gateway.Tests;
