from budgetnas.cli import entry

entry()
