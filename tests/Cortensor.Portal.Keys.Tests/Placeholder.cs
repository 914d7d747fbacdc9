namespace Cortensor.Portal.Keys.Tests;
