import BrokerCommands

await BrokerCommand.runFromCommandLine()
